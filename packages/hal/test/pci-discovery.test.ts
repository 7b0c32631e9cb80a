import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AccessRecorder, type GpuccError, HostRoot, isGpuccError, localFs } from '../src/index.js';
import {
  cardFunctions,
  discoverPci,
  groupMembers,
  isBridge,
  isGpu,
  isNvidia,
  isNvSwitch,
  isVirtualFunction,
  nvidiaDevices,
  readPciDevice,
  refreshPci,
} from '../src/pci/index.js';
import { type PciAddress, parsePciAddress } from '../src/types/index.js';

// ---- a host tree laid out as the kernel does (docs/facts/kernel-sysfs-pci.md#sysfs-layout) -----------

interface FunctionSpec {
  address: string;
  /** Path below sys/devices of the parent: `pci0000:40/0000:40:01.1/...`. */
  parent: string;
  vendor?: number;
  device?: number;
  class: number;
  subsystemVendor?: number;
  subsystemDevice?: number;
  driver?: string;
  override?: string;
  group?: number;
  resetMethods?: string[];
  /** Raw attribute content that replaces (string) or removes (null) what the kernel would print. */
  raw?: Record<string, string | null>;
}

class HostTree {
  constructor(readonly root: string) {}

  abs(rel: string): string {
    return path.join(this.root, rel);
  }

  file(rel: string, content: string): void {
    localFs.makeDir(path.dirname(this.abs(rel)));
    localFs.writeFileSync(this.abs(rel), content);
  }

  dir(rel: string): void {
    localFs.makeDir(this.abs(rel));
  }

  /** A relative symlink, as sysfs has them. */
  link(rel: string, targetRel: string): void {
    localFs.makeDir(path.dirname(this.abs(rel)));
    localFs.symlinkSync(path.relative(path.dirname(this.abs(rel)), this.abs(targetRel)), this.abs(rel));
  }

  remove(rel: string): void {
    localFs.removeSync(this.abs(rel));
  }

  /** One PCI function: attributes in kernel formats, bus link, driver link, group links. Returns its dir. */
  fn(spec: FunctionSpec): string {
    const dev = `sys/devices/${spec.parent}/${spec.address}`;
    const hex = (value: number, width: number) => `0x${value.toString(16).padStart(width, '0')}\n`;
    const attrs: Record<string, string | null> = {
      vendor: hex(spec.vendor ?? 0x10de, 4),
      device: hex(spec.device ?? 0x2331, 4),
      class: hex(spec.class, 6),
      subsystem_vendor: hex(spec.subsystemVendor ?? spec.vendor ?? 0x10de, 4),
      subsystem_device: hex(spec.subsystemDevice ?? 0x1626, 4),
      revision: '0xa1\n',
      numa_node: '0\n',
      driver_override: `${spec.override ?? '(null)'}\n`,
      enable: '1\n',
      reset_method: spec.resetMethods?.length ? `${spec.resetMethods.join(' ')}\n` : '',
      ...(spec.resetMethods?.length ? { reset: '' } : {}),
      ...(spec.class >> 8 === 0x0300 ? { boot_vga: '1\n' } : {}),
      ...spec.raw,
    };
    this.dir(dev);
    for (const [name, content] of Object.entries(attrs)) if (content !== null) this.file(`${dev}/${name}`, content);
    this.link(`${dev}/subsystem`, 'sys/bus/pci');
    this.link(`sys/bus/pci/devices/${spec.address}`, dev);
    if (spec.driver) {
      this.link(`${dev}/driver`, `sys/bus/pci/drivers/${spec.driver}`);
      this.link(`sys/bus/pci/drivers/${spec.driver}/${spec.address}`, dev);
    }
    if (spec.group !== undefined) {
      const group = `sys/kernel/iommu_groups/${spec.group}`;
      this.file(`${group}/type`, 'DMA-FQ\n');
      this.link(`${dev}/iommu_group`, group);
      this.link(`${group}/devices/${spec.address}`, dev);
    }
    return dev;
  }

  /** A devlink from a card's `.0` to a companion, with both ends pointing at the devlink dir. */
  consumer(supplierDev: string, supplier: string, consumerDev: string, consumer: string): void {
    const devlink = `sys/devices/virtual/devlink/pci:${supplier}--pci:${consumer}`;
    this.file(`${devlink}/status`, 'active\n');
    this.link(`${devlink}/supplier`, supplierDev);
    this.link(`${devlink}/consumer`, consumerDev);
    this.link(`${supplierDev}/consumer:pci:${consumer}`, devlink);
    this.link(`${consumerDev}/supplier:pci:${supplier}`, devlink);
  }
}

/** Remembers every path read, to show what discovery touched. */
class PathRecorder extends AccessRecorder {
  readonly paths: string[] = [];
  override recordRead(relPath: string): void {
    super.recordRead(relPath);
    this.paths.push(relPath);
  }
}

const addr = (value: string): PciAddress => parsePciAddress(value);
const ROOT_PORT = 'pci0000:40/0000:40:01.1';
const SWITCH = `${ROOT_PORT}/0000:41:00.0/0000:42:00.0`;

let root: string;
let tree: HostTree;
let sysfs: () => HostRoot;

beforeEach(() => {
  root = path.join(os.tmpdir(), `gpucc-pci-${randomBytes(6).toString('hex')}`);
  tree = new HostTree(root);
  tree.dir('sys/bus/pci/devices');
  tree.dir('sys/kernel/iommu_groups');
  sysfs = () => new HostRoot(root);
});

afterEach(() => {
  localFs.removeSync(root);
});

/** The nvtrust#55 shape: a GPU behind a root port and a two-level switch, each in a group. */
function hgxSlice(): void {
  tree.fn({
    address: '0000:40:01.1',
    parent: 'pci0000:40',
    vendor: 0x1022,
    class: 0x060400,
    driver: 'pcieport',
    group: 30,
  });
  tree.fn({
    address: '0000:41:00.0',
    parent: ROOT_PORT,
    vendor: 0x1000,
    device: 0xc030,
    class: 0x060400,
    driver: 'pcieport',
    group: 31,
  });
  tree.fn({
    address: '0000:42:00.0',
    parent: `${ROOT_PORT}/0000:41:00.0`,
    vendor: 0x1000,
    device: 0xc030,
    class: 0x060400,
    driver: 'pcieport',
    group: 32,
  });
  tree.fn({
    address: '0000:43:00.0',
    parent: SWITCH,
    class: 0x030200,
    driver: 'nvidia',
    group: 12,
    resetMethods: ['flr', 'bus'],
  });
}

function problemCodes(errors: { code: string }[]): string[] {
  return errors.map((e) => e.code);
}

describe('readPciDevice', () => {
  it('reads a GPU bound to nvidia behind a PCIe switch, with its IOMMU group', () => {
    hgxSlice();
    const gpu = readPciDevice(sysfs(), addr('0000:43:00.0'));
    expect(gpu).toEqual({
      address: '0000:43:00.0',
      vendor: 0x10de,
      device: 0x2331,
      class: 0x030200,
      subsystemVendor: 0x10de,
      subsystemDevice: 0x1626,
      revision: 0xa1,
      numaNode: 0,
      driver: 'nvidia',
      iommuGroup: 12,
      virtfns: [],
      consumers: [],
      resetMethods: ['flr', 'bus'],
      hasResetAttribute: true,
      sysfsPath: `sys/devices/${SWITCH}/0000:43:00.0`,
      kind: 'gpu',
    });
    expect(isGpu(gpu) && isNvidia(gpu)).toBe(true);
    expect(isVirtualFunction(gpu)).toBe(false);
  });

  it('reports an unbound device with no driver, no override and no reset', () => {
    tree.fn({ address: '0000:43:00.0', parent: 'pci0000:40', class: 0x030200, group: 1 });
    const gpu = readPciDevice(sysfs(), addr('0000:43:00.0'));
    expect(gpu.driver).toBeUndefined();
    expect(gpu.driverOverride).toBeUndefined();
    expect(gpu.resetMethods).toEqual([]);
    expect(gpu.hasResetAttribute).toBe(false);
  });

  it('treats driver_override "(null)" as unset and returns a set override by name', () => {
    tree.fn({ address: '0000:43:00.0', parent: 'pci0000:40', class: 0x030200 });
    tree.fn({ address: '0000:44:00.0', parent: 'pci0000:40', class: 0x030200, override: 'vfio-pci' });
    expect(readPciDevice(sysfs(), addr('0000:43:00.0')).driverOverride).toBeUndefined();
    expect(readPciDevice(sysfs(), addr('0000:44:00.0')).driverOverride).toBe('vfio-pci');
  });

  it('reads the iommufd cdev from vfio-dev/vfio3/dev', () => {
    const dev = tree.fn({
      address: '0000:43:00.0',
      parent: 'pci0000:40',
      class: 0x030200,
      driver: 'vfio-pci',
      group: 7,
    });
    tree.file(`${dev}/vfio-dev/vfio3/dev`, '511:3\n');
    const gpu = readPciDevice(sysfs(), addr('0000:43:00.0'));
    expect(gpu.vfioCdev).toEqual({ name: 'vfio3', index: 3, major: 511, minor: 3 });
    expect(gpu.driver).toBe('vfio-pci');
  });

  it('tolerates missing optional attributes: subsystem IDs, revision, numa_node', () => {
    tree.fn({
      address: '0000:43:00.0',
      parent: 'pci0000:40',
      class: 0x030200,
      raw: { subsystem_vendor: null, subsystem_device: null, revision: null, numa_node: null, driver_override: null },
    });
    const gpu = readPciDevice(sysfs(), addr('0000:43:00.0'));
    expect(gpu.subsystemVendor).toBeUndefined();
    expect(gpu.subsystemDevice).toBeUndefined();
    expect(gpu.revision).toBeUndefined();
    expect(gpu.numaNode).toBe(-1);
    expect(gpu.kind).toBe('gpu');
  });

  it('reads numa_node -1 as no affinity', () => {
    tree.fn({ address: '0000:43:00.0', parent: 'pci0000:40', class: 0x030200, raw: { numa_node: '-1\n' } });
    expect(readPciDevice(sysfs(), addr('0000:43:00.0')).numaNode).toBe(-1);
  });

  it('parses a class written without padding or newline numerically (0x30200 is 0x030200)', () => {
    tree.fn({ address: '0000:43:00.0', parent: 'pci0000:40', class: 0x030200, raw: { class: '0x30200' } });
    const gpu = readPciDevice(sysfs(), addr('0000:43:00.0'));
    expect(gpu.class).toBe(0x030200);
    expect(gpu.kind).toBe('gpu');
  });

  it.each([
    ['numa_node', 'zero\n', 'numaNode', -1],
    ['reset_method', 'flr  bus\n', 'resetMethods', []],
    ['revision', '0xa1\n\n', 'revision', undefined],
  ])(
    'keeps the device when %s = %j is malformed: that attribute unknown, a warning naming the file',
    (name, content, field, value) => {
      tree.fn({ address: '0000:43:00.0', parent: 'pci0000:40', class: 0x030200, raw: { [name]: content } });
      const warnings: GpuccError[] = [];
      const gpu = readPciDevice(sysfs(), addr('0000:43:00.0'), warnings);
      expect(gpu.kind).toBe('gpu');
      expect(gpu[field as keyof typeof gpu]).toEqual(value);
      expect(gpu.unknownAttributes).toEqual([name]);
      expect(warnings).toHaveLength(1);
      expect(isGpuccError(warnings[0], 'ERR_GPUCC_MALFORMED_ATTRIBUTE')).toBe(true);
      expect(warnings[0]!.message).toContain(`/sys/devices/pci0000:40/0000:43:00.0/${name}`);
      const topology = discoverPci(sysfs());
      expect(topology.devices.map((d) => d.address)).toContain('0000:43:00.0');
      expect(topology.problems).toEqual([]);
      expect(topology.warnings.map((w) => w.details.attribute)).toEqual([name]);
    },
  );

  it.each([
    ['vendor', 'notanid\n'],
    ['device', '0x12345\n'],
    ['class', '030200\n'],
    ['driver_override', '\n'],
  ])('rejects %s = %j with ERR_GPUCC_MALFORMED_ATTRIBUTE naming the file and the content', (name, content) => {
    tree.fn({ address: '0000:43:00.0', parent: 'pci0000:40', class: 0x030200, raw: { [name]: content } });
    let caught: unknown;
    try {
      readPciDevice(sysfs(), addr('0000:43:00.0'));
    } catch (error) {
      caught = error;
    }
    expect(isGpuccError(caught, 'ERR_GPUCC_MALFORMED_ATTRIBUTE')).toBe(true);
    const message = (caught as Error).message;
    expect(message).toContain(`/sys/devices/pci0000:40/0000:43:00.0/${name}`);
    expect(message).toContain(JSON.stringify(content));
  });

  it('refuses a driver link whose name would escape a path join', () => {
    const dev = tree.fn({ address: '0000:43:00.0', parent: 'pci0000:40', class: 0x030200 });
    localFs.symlinkSync('..', tree.abs(`${dev}/driver`));
    expect(() => readPciDevice(sysfs(), addr('0000:43:00.0'))).toThrow(
      expect.objectContaining({ code: 'ERR_GPUCC_MALFORMED_ATTRIBUTE' }),
    );
  });

  it('fails with a read error naming the file when a required attribute is missing', () => {
    tree.fn({ address: '0000:43:00.0', parent: 'pci0000:40', class: 0x030200, raw: { class: null } });
    expect(() => readPciDevice(sysfs(), addr('0000:43:00.0'))).toThrow(/0000:43:00\.0\/class/);
  });

  it('fails with ERR_GPUCC_DEVICE_NOT_FOUND for an address that is not on the bus', () => {
    hgxSlice();
    let caught: unknown;
    try {
      readPciDevice(sysfs(), addr('0000:99:00.0'));
    } catch (error) {
      caught = error;
    }
    expect(isGpuccError(caught, 'ERR_GPUCC_DEVICE_NOT_FOUND')).toBe(true);
    expect((caught as Error).message).toContain('0000:99:00.0');
  });

  it('refuses an address that is not validated instead of joining it into a path', () => {
    expect(() => readPciDevice(sysfs(), '../../../etc' as PciAddress)).toThrow(
      expect.objectContaining({ code: 'ERR_GPUCC_INVALID_PCI_ADDRESS' }),
    );
  });
});

describe('kinds', () => {
  it('classifies NVSwitch, bridges and foreign devices by number', () => {
    tree.fn({ address: '0000:00:00.0', parent: 'pci0000:00', vendor: 0x1022, device: 0x14a4, class: 0x060000 });
    tree.fn({
      address: '0000:05:00.0',
      parent: 'pci0000:00',
      device: 0x22a3,
      class: 0x068000,
      driver: 'nvidia-nvswitch',
    });
    tree.fn({ address: '0000:06:00.0', parent: 'pci0000:00', vendor: 0x1000, device: 0xc030, class: 0x060400 });
    tree.fn({
      address: '0000:07:00.0',
      parent: 'pci0000:00',
      vendor: 0x15b3,
      device: 0x1021,
      class: 0x020700,
      driver: 'mlx5_core',
    });
    tree.fn({ address: '0000:08:00.0', parent: 'pci0000:00', vendor: 0x1002, device: 0x74a1, class: 0x038000 });
    tree.fn({ address: '0000:09:00.0', parent: 'pci0000:00', class: 0x040300 });
    const topology = discoverPci(sysfs());
    const kinds = Object.fromEntries(topology.devices.map((d) => [d.address, d.kind]));
    expect(kinds).toEqual({
      '0000:00:00.0': 'bridge',
      '0000:05:00.0': 'nvswitch',
      '0000:06:00.0': 'bridge',
      '0000:07:00.0': 'other',
      '0000:08:00.0': 'other',
      '0000:09:00.0': 'other',
    });
    const nvswitch = topology.byAddress.get(addr('0000:05:00.0'))!;
    expect(isNvSwitch(nvswitch) && !isBridge(nvswitch) && !isGpu(nvswitch)).toBe(true);
    expect(nvidiaDevices(topology).map((d) => d.address)).toEqual(['0000:05:00.0', '0000:09:00.0']);
    expect(topology.problems).toEqual([]);
  });

  it('counts an NVIDIA VGA-class GPU (0x0300xx) as a GPU', () => {
    tree.fn({ address: '0000:01:00.0', parent: 'pci0000:00', device: 0x2204, class: 0x030000 });
    const gpu = readPciDevice(sysfs(), addr('0000:01:00.0'));
    expect(gpu.kind).toBe('gpu');
    expect(gpu.bootVga).toBe(true);
  });
});

describe('discoverPci', () => {
  it('discovers every function sorted by address, with groups and a map by address', () => {
    hgxSlice();
    tree.fn({ address: '0000:03:00.0', parent: 'pci0000:00', class: 0x030200, driver: 'nvidia', group: 2 });
    const topology = discoverPci(sysfs());
    expect(topology.devices.map((d) => d.address)).toEqual([
      '0000:03:00.0',
      '0000:40:01.1',
      '0000:41:00.0',
      '0000:42:00.0',
      '0000:43:00.0',
    ]);
    expect(topology.byAddress.get(addr('0000:43:00.0'))?.driver).toBe('nvidia');
    expect(topology.iommuEnabled).toBe(true);
    expect([...topology.groups.keys()]).toEqual([2, 12, 30, 31, 32]);
    expect(groupMembers(topology, 12)).toEqual(['0000:43:00.0']);
    expect(groupMembers(topology, 99)).toEqual([]);
    expect(topology.problems).toEqual([]);
  });

  it('puts two GPUs that share a group (no ACS) and a foreign NIC in the same group', () => {
    tree.fn({
      address: '0000:03:00.0',
      parent: 'pci0000:00/0000:00:01.0',
      class: 0x030200,
      driver: 'nvidia',
      group: 5,
    });
    tree.fn({
      address: '0000:04:00.0',
      parent: 'pci0000:00/0000:00:01.0',
      class: 0x030200,
      driver: 'nvidia',
      group: 5,
    });
    tree.fn({
      address: '0000:05:00.0',
      parent: 'pci0000:00/0000:00:01.0',
      vendor: 0x15b3,
      class: 0x020700,
      driver: 'mlx5_core',
      group: 5,
    });
    const topology = discoverPci(sysfs());
    expect(groupMembers(topology, 5)).toEqual(['0000:03:00.0', '0000:04:00.0', '0000:05:00.0']);
    expect(topology.byAddress.get(addr('0000:05:00.0'))).toMatchObject({
      kind: 'other',
      driver: 'mlx5_core',
      iommuGroup: 5,
    });
  });

  it('lists every function of a VGA card and its consumer links as one card', () => {
    const gfx = tree.fn({
      address: '0000:61:00.0',
      parent: 'pci0000:60/0000:60:03.1',
      device: 0x2204,
      class: 0x030000,
      driver: 'nvidia',
      group: 20,
    });
    const audio = tree.fn({
      address: '0000:61:00.1',
      parent: 'pci0000:60/0000:60:03.1',
      device: 0x1aef,
      class: 0x040300,
      driver: 'snd_hda_intel',
      group: 20,
    });
    const usb = tree.fn({
      address: '0000:61:00.2',
      parent: 'pci0000:60/0000:60:03.1',
      device: 0x1ada,
      class: 0x0c0330,
      driver: 'xhci_hcd',
      group: 20,
    });
    const ucsi = tree.fn({
      address: '0000:61:00.3',
      parent: 'pci0000:60/0000:60:03.1',
      device: 0x1adb,
      class: 0x0c8000,
      driver: 'nvidia-gpu',
      group: 20,
    });
    tree.consumer(gfx, '0000:61:00.0', audio, '0000:61:00.1');
    tree.consumer(gfx, '0000:61:00.0', usb, '0000:61:00.2');
    tree.consumer(gfx, '0000:61:00.0', ucsi, '0000:61:00.3');
    tree.fn({ address: '0000:62:00.0', parent: 'pci0000:60/0000:60:03.2', class: 0x030200, group: 21 });
    const topology = discoverPci(sysfs());
    const vga = topology.byAddress.get(addr('0000:61:00.0'))!;
    expect(vga.consumers).toEqual(['0000:61:00.1', '0000:61:00.2', '0000:61:00.3']);
    const card = ['0000:61:00.0', '0000:61:00.1', '0000:61:00.2', '0000:61:00.3'];
    expect(cardFunctions(topology, addr('0000:61:00.0'))).toEqual(card);
    expect(cardFunctions(topology, addr('0000:61:00.2'))).toEqual(card);
    expect(cardFunctions(topology, addr('0000:62:00.0'))).toEqual(['0000:62:00.0']);
    expect(groupMembers(topology, 20)).toEqual(card);
    expect(topology.byAddress.get(addr('0000:61:00.3'))?.driver).toBe('nvidia-gpu');
  });

  it('still lists slot siblings when only the audio consumer link exists', () => {
    const gfx = tree.fn({ address: '0000:61:00.0', parent: 'pci0000:60', class: 0x030000 });
    const audio = tree.fn({ address: '0000:61:00.1', parent: 'pci0000:60', class: 0x040300 });
    tree.fn({ address: '0000:61:00.3', parent: 'pci0000:60', class: 0x0c8000 });
    tree.consumer(gfx, '0000:61:00.0', audio, '0000:61:00.1');
    const topology = discoverPci(sysfs());
    expect(cardFunctions(topology, addr('0000:61:00.0'))).toEqual(['0000:61:00.0', '0000:61:00.1', '0000:61:00.3']);
  });

  it('links an SR-IOV VF to its PF and the PF to its VFs in numeric order', () => {
    const pf = tree.fn({
      address: '0000:81:00.0',
      parent: 'pci0000:80',
      vendor: 0x15b3,
      class: 0x020000,
      driver: 'mlx5_core',
      group: 40,
      raw: { sriov_totalvfs: '16\n', sriov_numvfs: '11\n' },
    });
    const vfs = ['0000:81:00.2', '0000:81:01.3', '0000:81:01.4'];
    vfs.forEach((vf, i) => {
      const dev = tree.fn({ address: vf, parent: 'pci0000:80', vendor: 0x15b3, class: 0x020000, group: 41 + i });
      tree.link(`${dev}/physfn`, pf);
      tree.link(`${pf}/virtfn${[0, 2, 10][i]}`, dev);
    });
    const topology = discoverPci(sysfs());
    const pfDevice = topology.byAddress.get(addr('0000:81:00.0'))!;
    expect(pfDevice.sriov).toEqual({ totalVfs: 16, numVfs: 11 });
    expect(pfDevice.virtfns).toEqual(vfs);
    expect(isVirtualFunction(pfDevice)).toBe(false);
    const vf = topology.byAddress.get(addr('0000:81:01.4'))!;
    expect(vf.physfn).toBe('0000:81:00.0');
    expect(isVirtualFunction(vf)).toBe(true);
    expect(vf.sriov).toBeUndefined();
  });

  it('reports no IOMMU when the tree has no groups', () => {
    tree.fn({ address: '0000:43:00.0', parent: 'pci0000:40', class: 0x030200, driver: 'nvidia' });
    const topology = discoverPci(sysfs());
    expect(topology.iommuEnabled).toBe(false);
    expect(topology.groups.size).toBe(0);
    expect(topology.devices[0]?.iommuGroup).toBeUndefined();
  });

  it('reports no IOMMU and no devices when the directories are missing altogether', () => {
    localFs.removeSync(tree.abs('sys'));
    tree.dir('sys');
    const topology = discoverPci(sysfs());
    expect(topology).toMatchObject({ devices: [], iommuEnabled: false, problems: [] });
  });

  it('skips a function with vendor "notanid" and reports it, keeping the other devices', () => {
    hgxSlice();
    tree.fn({ address: '0000:44:00.0', parent: SWITCH, class: 0x030200, group: 13, raw: { vendor: 'notanid\n' } });
    const topology = discoverPci(sysfs());
    expect(topology.devices.map((d) => d.address)).toEqual([
      '0000:40:01.1',
      '0000:41:00.0',
      '0000:42:00.0',
      '0000:43:00.0',
    ]);
    expect(topology.problems).toHaveLength(1);
    const problem = topology.problems[0]!;
    expect(problem.code).toBe('ERR_GPUCC_MALFORMED_ATTRIBUTE');
    expect(problem.message).toContain('0000:44:00.0/vendor');
    expect(problem.message).toContain('notanid');
    expect(problem.details.address).toBe('0000:44:00.0');
    // The unreadable function still counts as a member of its group and of its card.
    expect(topology.addresses).toContain('0000:44:00.0');
    expect(groupMembers(topology, 13)).toEqual(['0000:44:00.0']);
    expect(cardFunctions(topology, addr('0000:44:00.0'))).toEqual(['0000:44:00.0']);
  });

  it('reports a bus entry that is not a PCI address and never reads under it', () => {
    hgxSlice();
    tree.fn({ address: '0000:4A:00.0', parent: 'pci0000:40', class: 0x030200 });
    tree.dir('sys/bus/pci/devices/not-a-device');
    const recorder = new PathRecorder();
    const topology = discoverPci(new HostRoot(root, { recorder }));
    expect(problemCodes(topology.problems)).toEqual(['ERR_GPUCC_INVALID_PCI_ADDRESS', 'ERR_GPUCC_INVALID_PCI_ADDRESS']);
    expect(topology.problems.map((p) => p.details.entry)).toEqual(['0000:4A:00.0', 'not-a-device']);
    expect(topology.problems[0]?.message).toContain('/sys/bus/pci/devices');
    expect(topology.devices).toHaveLength(4);
    expect(topology.addresses).not.toContain('0000:4A:00.0');
    expect(recorder.paths.filter((p) => p.includes('not-a-device') || p.includes('4A'))).toEqual([]);
  });

  it('reports a device whose bus link dangles as not found and keeps scanning', () => {
    hgxSlice();
    tree.fn({ address: '0000:44:00.0', parent: SWITCH, class: 0x030200 });
    tree.remove(`sys/devices/${SWITCH}/0000:44:00.0`);
    const topology = discoverPci(sysfs());
    expect(problemCodes(topology.problems)).toEqual(['ERR_GPUCC_DEVICE_NOT_FOUND']);
    expect(topology.devices).toHaveLength(4);
  });

  it('reports a malformed group entry and keeps the valid groups', () => {
    hgxSlice();
    tree.dir('sys/kernel/iommu_groups/not-a-group/devices');
    const topology = discoverPci(sysfs());
    expect(problemCodes(topology.problems)).toEqual(['ERR_GPUCC_MALFORMED_ATTRIBUTE']);
    expect([...topology.groups.keys()]).toEqual([12, 30, 31, 32]);
  });

  it('reads a tree whose bus entries are plain directories (a captured tree without links)', () => {
    tree.file('sys/bus/pci/devices/0000:43:00.0/vendor', '0x10de\n');
    tree.file('sys/bus/pci/devices/0000:43:00.0/device', '0x2335\n');
    tree.file('sys/bus/pci/devices/0000:43:00.0/class', '0x030200\n');
    const topology = discoverPci(sysfs());
    expect(topology.devices[0]).toMatchObject({
      device: 0x2335,
      kind: 'gpu',
      sysfsPath: 'sys/bus/pci/devices/0000:43:00.0',
    });
  });
});

describe('refreshPci', () => {
  // Two GPUs in their own groups, and a GPU with its audio function in a third (one card, one group).
  const GPU_A = addr('0000:03:00.0');
  const GPU_B = addr('0000:04:00.0');
  const GPU_C = addr('0000:05:00.0');
  const AUDIO_C = addr('0000:05:00.1');
  const devOf = (address: string) => `sys/devices/pci0000:00/${address}`;

  function threeCards(): void {
    tree.fn({ address: GPU_A, parent: 'pci0000:00', class: 0x030200, driver: 'nvidia', group: 2 });
    tree.fn({ address: GPU_B, parent: 'pci0000:00', class: 0x030200, driver: 'vfio-pci', group: 3 });
    tree.fn({ address: GPU_C, parent: 'pci0000:00', class: 0x030000, driver: 'vfio-pci', group: 4 });
    tree.fn({ address: AUDIO_C, parent: 'pci0000:00', class: 0x040300, driver: 'vfio-pci', group: 4 });
    tree.file('dev/vfio/vfio', '');
    tree.file('dev/vfio/3', '');
    tree.file('dev/vfio/4', '');
  }

  /** What the kernel does on a bind or unbind: the driver links move (this tree has no uevent). */
  function rebind(address: string, driver: string | undefined): void {
    const dev = devOf(address);
    const old = localFs.kindOf(tree.abs(`${dev}/driver`))
      ? path.basename(localFs.readLink(tree.abs(`${dev}/driver`)))
      : '';
    if (old) {
      tree.remove(`${dev}/driver`);
      tree.remove(`sys/bus/pci/drivers/${old}/${address}`);
    }
    if (driver) {
      tree.link(`${dev}/driver`, `sys/bus/pci/drivers/${driver}`);
      tree.link(`sys/bus/pci/drivers/${driver}/${address}`, dev);
    }
  }

  /** An iommufd cdev as the kernel makes it on a VFIO bind: under the device, in the class, in /dev. */
  function cdev(address: string, index: number, classLink = true): void {
    tree.file(`${devOf(address)}/vfio-dev/vfio${index}/dev`, `237:${index}\n`);
    if (classLink) tree.link(`sys/class/vfio-dev/vfio${index}`, `${devOf(address)}/vfio-dev/vfio${index}`);
    tree.file(`dev/vfio/devices/vfio${index}`, '');
  }

  const none = { nodes: [], functions: [] };

  it('with no change returns the same topology, reading nothing', () => {
    threeCards();
    const before = discoverPci(sysfs());
    const recorder = new PathRecorder();
    expect(refreshPci(new HostRoot(root, { recorder }), before, none)).toBe(before);
    expect(refreshPci(new HostRoot(root, { recorder }), before, { nodes: ['dev/vfio/vfio'], functions: [] })).toBe(
      before,
    );
    expect(recorder.paths).toEqual([]);
  });

  it('a group node that appeared: reads its group alone and equals a full discovery', () => {
    threeCards();
    const before = discoverPci(sysfs());
    rebind(GPU_A, 'vfio-pci');
    tree.file('dev/vfio/2', '');
    const recorder = new PathRecorder();
    const after = refreshPci(new HostRoot(root, { recorder }), before, { nodes: ['dev/vfio/2'], functions: [] });
    expect(after).toEqual(discoverPci(sysfs()));
    expect(after?.byAddress.get(GPU_A)?.driver).toBe('vfio-pci');
    expect(before.byAddress.get(GPU_A)?.driver).toBe('nvidia'); // the previous topology is left as it was
    expect(recorder.paths.length).toBeGreaterThan(0);
    expect(recorder.paths.every((p) => p.includes(GPU_A))).toBe(true);
  });

  it('a group node that vanished: reads every member of the group, and equals a full discovery', () => {
    threeCards();
    const before = discoverPci(sysfs());
    rebind(GPU_C, undefined);
    rebind(AUDIO_C, 'snd_hda_intel');
    tree.remove('dev/vfio/4');
    const recorder = new PathRecorder();
    const after = refreshPci(new HostRoot(root, { recorder }), before, { nodes: ['dev/vfio/4'], functions: [] });
    expect(after).toEqual(discoverPci(sysfs()));
    expect(new Set(recorder.paths.map((p) => /0000:0\d:00\.\d/.exec(p)?.[0]))).toEqual(new Set([GPU_C, AUDIO_C]));
  });

  it('a driver event reads its function again', () => {
    threeCards();
    const before = discoverPci(sysfs());
    rebind(AUDIO_C, undefined); // the group node stays: the GPU is still on vfio-pci
    const after = refreshPci(sysfs(), before, { nodes: [], functions: [AUDIO_C] });
    expect(after).toEqual(discoverPci(sysfs()));
    expect(after?.byAddress.get(AUDIO_C)?.driver).toBeUndefined();
  });

  it('an iommufd cdev finds its function through sys/class/vfio-dev, and through the topology once gone', () => {
    threeCards();
    tree.file('dev/iommu', '');
    cdev(GPU_B, 0);
    const before = discoverPci(sysfs());
    rebind(GPU_A, 'vfio-pci');
    cdev(GPU_A, 1);
    const bound = refreshPci(sysfs(), before, { nodes: ['dev/vfio/devices/vfio1'], functions: [] });
    expect(bound).toEqual(discoverPci(sysfs()));
    expect(bound?.byAddress.get(GPU_A)?.vfioCdev?.index).toBe(1);

    rebind(GPU_B, 'nvidia');
    tree.remove(`${devOf(GPU_B)}/vfio-dev`);
    tree.remove('sys/class/vfio-dev/vfio0');
    tree.remove('dev/vfio/devices/vfio0');
    const unbound = refreshPci(sysfs(), bound!, { nodes: ['dev/vfio/devices/vfio0'], functions: [] });
    expect(unbound).toEqual(discoverPci(sysfs()));
    expect(unbound?.byAddress.get(GPU_B)?.vfioCdev).toBeUndefined();
  });

  it.each([
    ['a path that is not a VFIO node', () => ({ nodes: ['dev/vfio/devices'], functions: [] })],
    [
      'a function added to the bus after the last discovery',
      () => {
        tree.fn({ address: '0000:06:00.0', parent: 'pci0000:00', class: 0x030200, driver: 'vfio-pci', group: 9 });
        return { nodes: [], functions: [addr('0000:06:00.0')] };
      },
    ],
    [
      'a group node of a group it does not know (a hot-added device)',
      () => {
        tree.fn({ address: '0000:06:00.0', parent: 'pci0000:00', class: 0x030200, driver: 'vfio-pci', group: 9 });
        tree.file('dev/vfio/9', '');
        return { nodes: ['dev/vfio/9'], functions: [] };
      },
    ],
    [
      'a function that left the bus',
      () => {
        tree.remove(devOf(GPU_B));
        tree.remove('dev/vfio/3');
        return { nodes: ['dev/vfio/3'], functions: [] };
      },
    ],
    [
      'a function whose IOMMU group changed',
      () => {
        tree.remove(`${devOf(GPU_A)}/iommu_group`);
        tree.link(`${devOf(GPU_A)}/iommu_group`, 'sys/kernel/iommu_groups/7');
        return { nodes: [], functions: [GPU_A] };
      },
    ],
    [
      'a function it cannot read now',
      () => {
        tree.file(`${devOf(GPU_A)}/vendor`, 'notanid\n');
        return { nodes: [], functions: [GPU_A] };
      },
    ],
    [
      'a node that exists while no member of its group is on VFIO (a bind no event named)',
      () => {
        tree.file('dev/vfio/2', '');
        return { nodes: ['dev/vfio/2'], functions: [] };
      },
    ],
    [
      'a cdev whose owner it cannot find',
      () => {
        tree.file('dev/iommu', '');
        rebind(GPU_A, 'vfio-pci');
        cdev(GPU_A, 5, false);
        return { nodes: ['dev/vfio/devices/vfio5'], functions: [] };
      },
    ],
  ])('asks for a full discovery after %s', (_what, change) => {
    threeCards();
    const before = discoverPci(sysfs());
    expect(refreshPci(sysfs(), before, change())).toBeUndefined();
  });

  it('asks for a full discovery for a function that could not be read the last time', () => {
    threeCards();
    tree.file(`${devOf(GPU_A)}/vendor`, 'notanid\n');
    const before = discoverPci(sysfs());
    expect(problemCodes(before.problems)).toEqual(['ERR_GPUCC_MALFORMED_ATTRIBUTE']);
    tree.file(`${devOf(GPU_A)}/vendor`, '0x10de\n');
    rebind(GPU_A, 'vfio-pci');
    tree.file('dev/vfio/2', '');
    expect(refreshPci(sysfs(), before, { nodes: ['dev/vfio/2'], functions: [] })).toBeUndefined();
  });
});
