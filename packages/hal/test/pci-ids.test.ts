import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as localFs from '../src/fs/local-fs.js';
import {
  checkPciIdsFile,
  findPciIds,
  type GpuccError,
  HostRoot,
  loadPciIds,
  loadPciIdsFile,
  lookupNvidiaDeviceName,
  PCI_IDS_PATHS,
  parseNvidiaPciIds,
} from '../src/index.js';

// A slice of the real file's shape: header comments, a vendor before 10de that reuses NVIDIA device
// ids, the 10de block with subsystems and comments, a vendor after it, and the class list.
const PCI_IDS = [
  '#',
  "#\tList of PCI ID's",
  '#',
  '# Version: 2025.01.01',
  '',
  '1000  Broadcom / LSI',
  '\t0073  MegaRAID SAS 2008 [Falcon]',
  '\t2331  SAS 5/iR Integrated RAID Controller',
  '\t\t1028 1f10  SAS 5/iR Adapter RAID Controller',
  '\tc030  PEX89000 Virtual PCIe Switch Port',
  '10b5  PLX Technology, Inc.',
  '\t22a3  PLX something',
  '10de  NVIDIA Corporation',
  '\t0020  NV4 [Riva TNT]',
  '# comment inside the NVIDIA block',
  '\t118a  GK104GL [GRID K520]',
  '\t\t10de 100d  GRID K520',
  '\t20b5  GA100 [A100 PCIe 80GB]',
  '\t22a3  GH100 [H100 NVSwitch]',
  '\t2330  GH100 [H100 SXM5 80GB]',
  '\t2331  GH100 [H100 PCIe]',
  '\t\t10de 1626  H100 PCIe',
  '\t2335  GH100 [H200 SXM 141GB]',
  '\t2901  GB100 [B200]',
  '10df  Emulex Corporation',
  '\t2330  not an NVIDIA device',
  '',
  'C 03  Display controller',
  '\t02  3D controller',
  '',
].join('\n');

let root: string;

beforeEach(() => {
  root = path.join(tmpdir(), `gpucc-pciids-${randomUUID()}`);
  localFs.makeDir(root);
});
afterEach(() => localFs.removeSync(root));

function place(relPath: string, text: string): void {
  const abs = path.join(root, relPath);
  localFs.makeDir(path.dirname(abs));
  localFs.writeFileSync(abs, text);
}

describe('parseNvidiaPciIds', () => {
  const db = parseNvidiaPciIds(PCI_IDS, 'usr/share/misc/pci.ids');

  it.each([
    [0x2331, 'GH100 [H100 PCIe]'],
    [0x2330, 'GH100 [H100 SXM5 80GB]'],
    [0x22a3, 'GH100 [H100 NVSwitch]'],
    [0x20b5, 'GA100 [A100 PCIe 80GB]'],
    [0x2901, 'GB100 [B200]'],
    [0x0020, 'NV4 [Riva TNT]'],
  ])('names NVIDIA device %s', (id, name) => {
    expect(lookupNvidiaDeviceName(db, id)).toBe(name);
  });

  it('never returns a name listed under another vendor for the same device id', () => {
    // 0x2331 is a Broadcom RAID controller, 0x22a3 a PLX device and 0x2330 an Emulex one above/below 10de.
    expect(lookupNvidiaDeviceName(db, 0x2331)).not.toMatch(/SAS/);
    expect(lookupNvidiaDeviceName(db, 0x0073)).toBeUndefined();
    expect(lookupNvidiaDeviceName(db, 0xc030)).toBeUndefined();
  });

  it('ignores subsystem lines, comments and everything after the NVIDIA block', () => {
    expect([...db.devices.keys()].sort((a, b) => a - b)).toEqual([
      0x0020, 0x118a, 0x20b5, 0x22a3, 0x2330, 0x2331, 0x2335, 0x2901,
    ]);
  });

  it('answers undefined for unknown devices and for no database', () => {
    expect(lookupNvidiaDeviceName(db, 0xffff)).toBeUndefined();
    expect(lookupNvidiaDeviceName(undefined, 0x2331)).toBeUndefined();
  });

  it('gives an empty database when the file has no NVIDIA block', () => {
    const other = parseNvidiaPciIds('1000  Broadcom / LSI\n\t2331  SAS\n', 'x');
    expect(other.devices.size).toBe(0);
    expect(lookupNvidiaDeviceName(other, 0x2331)).toBeUndefined();
  });

  it('accepts CRLF line ends', () => {
    const crlf = parseNvidiaPciIds(PCI_IDS.replaceAll('\n', '\r\n'), 'x');
    expect(lookupNvidiaDeviceName(crlf, 0x2331)).toBe('GH100 [H100 PCIe]');
  });

  it('refuses a malformed NVIDIA device line, naming the file and the line number', () => {
    const broken = PCI_IDS.replace('\t2330  GH100 [H100 SXM5 80GB]', '\t23x0  GH100 [H100 SXM5 80GB]');
    const lineNo = broken.split('\n').indexOf('\t23x0  GH100 [H100 SXM5 80GB]') + 1;
    let error: GpuccError | undefined;
    try {
      parseNvidiaPciIds(broken, 'usr/share/misc/pci.ids');
    } catch (caught) {
      error = caught as GpuccError;
    }
    expect(error?.code).toBe('ERR_GPUCC_PCI_IDS_MALFORMED');
    expect(error?.message).toContain('/usr/share/misc/pci.ids');
    expect(error?.message).toContain(`line ${lineNo}`);
    expect(error?.details).toMatchObject({ path: 'usr/share/misc/pci.ids', line: lineNo });
  });

  it('refuses a device line without a name', () => {
    expect(() => parseNvidiaPciIds('10de  NVIDIA Corporation\n\t2331\n', 'x')).toThrow(
      expect.objectContaining({ code: 'ERR_GPUCC_PCI_IDS_MALFORMED' }),
    );
  });

  it('does not judge malformed lines of other vendors', () => {
    const elsewhere = `${PCI_IDS}\nffff  Broken vendor\n\tzzzz broken\n`;
    expect(lookupNvidiaDeviceName(parseNvidiaPciIds(elsewhere, 'x'), 0x2331)).toBe('GH100 [H100 PCIe]');
  });
});

describe('loadPciIds', () => {
  it('is undefined on a host without pci.ids', () => {
    expect(loadPciIds(new HostRoot(root))).toBeUndefined();
    expect(findPciIds(new HostRoot(root))).toBeUndefined();
  });

  it('finds the file in the documented order', () => {
    place('usr/share/pci.ids', '10de  NVIDIA Corporation\n\t2331  from usr/share\n');
    place('usr/share/hwdata/pci.ids', '10de  NVIDIA Corporation\n\t2331  from hwdata\n');
    expect(lookupNvidiaDeviceName(loadPciIds(new HostRoot(root)), 0x2331)).toBe('from hwdata');
    place('usr/share/misc/pci.ids', '10de  NVIDIA Corporation\n\t2331  from misc\n');
    const db = loadPciIds(new HostRoot(root));
    expect(db?.source).toBe(PCI_IDS_PATHS[0]);
    expect(lookupNvidiaDeviceName(db, 0x2331)).toBe('from misc');
  });

  it('follows an absolute symlink inside the host root, not on this machine', () => {
    place('usr/share/hwdata/pci.ids', PCI_IDS);
    localFs.makeDir(path.join(root, 'usr/share/misc'));
    localFs.symlinkSync('/usr/share/hwdata/pci.ids', path.join(root, 'usr/share/misc/pci.ids'));
    const db = loadPciIds(new HostRoot(root));
    expect(db?.source).toBe('usr/share/hwdata/pci.ids');
    expect(lookupNvidiaDeviceName(db, 0x2331)).toBe('GH100 [H100 PCIe]');
  });

  it('skips a dangling link and uses the next file', () => {
    localFs.makeDir(path.join(root, 'usr/share/misc'));
    localFs.symlinkSync('/nowhere/pci.ids', path.join(root, 'usr/share/misc/pci.ids'));
    place('usr/share/pci.ids', PCI_IDS);
    expect(loadPciIds(new HostRoot(root))?.source).toBe('usr/share/pci.ids');
  });
});

describe('loadPciIds with a fallback file outside the host root (--pci-ids)', () => {
  let outside: string;
  beforeEach(() => {
    outside = path.join(tmpdir(), `gpucc-pciids-image-${randomUUID()}`);
    localFs.makeDir(outside);
  });
  afterEach(() => localFs.removeSync(outside));

  const image = () => {
    const file = path.join(outside, 'pci.ids');
    localFs.writeFileSync(file, '10de  NVIDIA Corporation\n\t2331  from the image\n');
    return file;
  };

  it('order: the host root first, then the fallback file, then nothing', () => {
    const fallbackFile = image();
    // host root without pci.ids: the fallback names the device, and says where it came from
    const db = loadPciIds(new HostRoot(root), { fallbackFile });
    expect(lookupNvidiaDeviceName(db, 0x2331)).toBe('from the image');
    expect(db).toMatchObject({ source: fallbackFile, origin: 'fallback' });
    // any pci.ids under the host root wins, even the last place searched
    place('usr/share/pci.ids', '10de  NVIDIA Corporation\n\t2331  from the host\n');
    const host = loadPciIds(new HostRoot(root), { fallbackFile });
    expect(lookupNvidiaDeviceName(host, 0x2331)).toBe('from the host');
    expect(host).toMatchObject({ source: 'usr/share/pci.ids', origin: 'host' });
    // no fallback given: only the host's
    localFs.removeSync(path.join(root, 'usr'));
    expect(loadPciIds(new HostRoot(root), {})).toBeUndefined();
  });

  it('never joins the fallback under the host root, and never reads this machine’s files without it', () => {
    const fallbackFile = image();
    // the same path inside the host root does not exist: it is read as given, outside
    expect(loadPciIds(new HostRoot(root), { fallbackFile })?.source).toBe(fallbackFile);
    // no fallback: nothing outside the root is read (this machine may well have /usr/share/misc/pci.ids)
    expect(loadPciIds(new HostRoot(root))).toBeUndefined();
  });

  it('a dangling host link falls through to the fallback', () => {
    localFs.makeDir(path.join(root, 'usr/share/misc'));
    localFs.symlinkSync('/nowhere/pci.ids', path.join(root, 'usr/share/misc/pci.ids'));
    expect(loadPciIds(new HostRoot(root), { fallbackFile: image() })?.origin).toBe('fallback');
  });

  it('refuses a missing fallback file, or a directory, with a code, the path and a hint', () => {
    const missing = path.join(outside, 'nope.ids');
    for (const [file, problem] of [
      [missing, 'does not exist'],
      [outside, 'a directory'],
    ] as const) {
      let error: GpuccError | undefined;
      try {
        loadPciIds(new HostRoot(root), { fallbackFile: file });
      } catch (caught) {
        error = caught as GpuccError;
      }
      expect(error?.code).toBe('ERR_GPUCC_PCI_IDS_UNREADABLE');
      expect(error?.message).toContain(file);
      expect(error?.message).toContain(problem);
      expect(error?.hint).toMatch(/--pci-ids \(GPUCC_PCI_IDS\)/);
      expect(error?.details).toMatchObject({ path: file });
    }
  });

  it.skipIf(process.getuid?.() === 0)('refuses a file this process may not read (EACCES)', () => {
    const file = image();
    localFs.writeFileSync(file, 'x', 0o000);
    expect(() => checkPciIdsFile(file)).toThrow(
      expect.objectContaining({ code: 'ERR_GPUCC_PCI_IDS_UNREADABLE', details: { path: file, errno: 'EACCES' } }),
    );
  });

  it('checkPciIdsFile: resolves a relative path, follows symlinks, reads nothing', () => {
    const file = image();
    const link = path.join(outside, 'link.ids');
    localFs.symlinkSync(file, link);
    expect(checkPciIdsFile(link)).toBe(link);
    expect(checkPciIdsFile(path.relative(process.cwd(), file))).toBe(file);
    localFs.removeSync(file);
    expect(() => checkPciIdsFile(link)).toThrow(expect.objectContaining({ code: 'ERR_GPUCC_PCI_IDS_UNREADABLE' }));
  });

  it('names the fallback file, not a host path, when it is malformed', () => {
    const file = path.join(outside, 'bad.ids');
    localFs.writeFileSync(file, '10de  NVIDIA Corporation\n\t23x1  broken\n');
    expect(() => loadPciIdsFile(file)).toThrow(
      expect.objectContaining({
        code: 'ERR_GPUCC_PCI_IDS_MALFORMED',
        message: expect.stringContaining(`line 2 in ${file} (--pci-ids)`),
      }),
    );
  });
});
