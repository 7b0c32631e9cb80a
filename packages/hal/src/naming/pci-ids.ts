import path from 'node:path';
import { errnoOf, GpuccError } from '../errors/index.js';
import { type FileKind, type HostRoot, localFs } from '../fs/index.js';

/** The NVIDIA part of a pci.ids file: device id -> model name, under vendor 0x10de only. */
export interface PciIdsDb {
  /**
   * The file it came from: a host path relative to the root (`usr/share/misc/pci.ids`), or the
   * absolute path of the fallback file of this machine or container (`/usr/share/misc/pci.ids`).
   */
  readonly source: string;
  /** `host`: found under the host root; `fallback`: the `--pci-ids` file (the host has none). */
  readonly origin: 'host' | 'fallback';
  readonly vendorId: typeof NVIDIA_VENDOR_ID;
  readonly devices: ReadonlyMap<number, string>;
}

export const NVIDIA_VENDOR_ID = 0x10de;

/**
 * Where names come from besides the host: a pci.ids file outside the host root (`--pci-ids`,
 * `GPUCC_PCI_IDS`), such as the copy in gpucc's container images, read only when the host has none.
 */
export interface PciIdsSource {
  /** Absolute path on this machine (in a pod: inside the container), not joined under the host root. */
  fallbackFile?: string | undefined;
}

/** Where distributions install pci.ids, in the order the sandbox device plugin searches. */
export const PCI_IDS_PATHS = [
  'usr/share/misc/pci.ids',
  'usr/local/share/pci.ids',
  'usr/share/hwdata/pci.ids',
  'usr/share/pci.ids',
] as const;

// Vendor lines are unindented `vvvv  Name`; device lines one TAB, `\tdddd  Name`.
const VENDOR_10DE = /^10de[ \t]/im;
const DEVICE_LINE = /^\t([0-9A-Fa-f]{4})[ \t]+(\S.*)$/;

/** The first pci.ids under the host root (symlinks followed inside the root), or undefined. */
export function findPciIds(sysfs: HostRoot): string | undefined {
  for (const candidate of PCI_IDS_PATHS) {
    const file = followInsideRoot(sysfs, candidate);
    if (file !== undefined) return file;
  }
  return undefined;
}

// Distributions link pci.ids between these directories, often with absolute targets; following such
// a link with the OS would leave a mounted host root (/host), so links are resolved through HostRoot.
function followInsideRoot(sysfs: HostRoot, relPath: string): string | undefined {
  let current = relPath;
  for (let hops = 0; hops < 8; hops += 1) {
    const kind = sysfs.kindOf(current);
    if (kind === 'file') return current;
    if (kind !== 'symlink') return undefined;
    const next = sysfs.resolveLink(current);
    if (next === undefined) return undefined;
    current = next;
  }
  return undefined;
}

/**
 * The NVIDIA names the operands use, by one rule so that kata-manager and the device plugin agree:
 * the host's pci.ids first (the names the host's own tools show), else the fallback file outside
 * the host root (`source.fallbackFile`), else undefined (callers fall back to ID-based names).
 * A fallback file that cannot be read is an error (ERR_GPUCC_PCI_IDS_UNREADABLE), never skipped.
 */
export function loadPciIds(sysfs: HostRoot, source: PciIdsSource = {}): PciIdsDb | undefined {
  const hostFile = findPciIds(sysfs);
  const text = hostFile === undefined ? undefined : sysfs.readOptional(hostFile);
  if (hostFile !== undefined && text !== undefined) return parseNvidiaPciIds(text, hostFile);
  return source.fallbackFile === undefined ? undefined : loadPciIdsFile(source.fallbackFile);
}

/** Reads and parses a pci.ids file of this machine (absolute, not under a host root). */
export function loadPciIdsFile(file: string): PciIdsDb {
  const abs = checkPciIdsFile(file);
  let text: string;
  try {
    text = localFs.readText(abs);
  } catch (error) {
    throw unreadable(abs, error);
  }
  return parseNvidiaPciIds(text, abs, 'fallback');
}

/**
 * Checks at start-up that a `--pci-ids` file can be read: it exists, is a regular file (symlinks
 * followed) and this process may open it. Returns its absolute path (a relative one is taken from
 * the working directory). Reads nothing, so it costs nothing when the host has its own pci.ids.
 */
export function checkPciIdsFile(file: string): string {
  const abs = path.resolve(file);
  let kind: FileKind;
  try {
    kind = localFs.probeReadable(abs);
  } catch (error) {
    throw unreadable(abs, error);
  }
  if (kind !== 'file') throw unreadable(abs, undefined, kind === 'dir' ? 'a directory' : 'not a regular file');
  return abs;
}

function unreadable(abs: string, cause: unknown, what?: string): GpuccError {
  const errno = errnoOf(cause);
  const problem =
    what ??
    (errno === 'ENOENT' || errno === 'ENOTDIR'
      ? 'it does not exist'
      : errno === 'EACCES' || errno === 'EPERM'
        ? 'permission denied'
        : `${(cause as Error | undefined)?.message ?? String(cause)}`);
  return new GpuccError('ERR_GPUCC_PCI_IDS_UNREADABLE', `cannot read the pci.ids file ${abs}: ${problem}`, {
    hint: 'give --pci-ids (GPUCC_PCI_IDS) a readable pci.ids of this machine or container, not a host path under --host-root (the gpucc images carry /usr/share/misc/pci.ids); set it to "" for none',
    details: { path: abs, ...(errno ? { errno } : {}) },
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * Parses only the vendor 10de block of a pci.ids text: the file is ~1.3 MB and gpucc needs only
 * NVIDIA device names. Subsystem lines (two TABs) and comments are skipped; the block ends at the
 * next unindented line that is not a comment (the next vendor, or the class list).
 */
export function parseNvidiaPciIds(text: string, source: string, origin: PciIdsDb['origin'] = 'host'): PciIdsDb {
  const devices = new Map<number, string>();
  const match = VENDOR_10DE.exec(text);
  if (match === null) return { source, origin, vendorId: NVIDIA_VENDOR_ID, devices };

  let lineNo = countLines(text, match.index);
  let pos = text.indexOf('\n', match.index);
  while (pos !== -1 && pos < text.length) {
    const start = pos + 1;
    const end = text.indexOf('\n', start);
    const line = text.slice(start, end === -1 ? undefined : end).replace(/\r$/, '');
    pos = end;
    lineNo += 1;
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    if (!line.startsWith('\t')) break; // next vendor
    if (line.startsWith('\t\t')) continue; // subsystem
    const device = DEVICE_LINE.exec(line);
    if (device === null) {
      throw new GpuccError(
        'ERR_GPUCC_PCI_IDS_MALFORMED',
        `malformed NVIDIA device line ${lineNo} in ${origin === 'host' ? `/${source}` : `${source} (--pci-ids)`}: ${JSON.stringify(line)}`,
        {
          hint: 'a device line is a TAB, 4 hex digits, spaces and a name; reinstall pci.ids (hwdata / pciutils) or run update-pciids',
          details: { path: source, line: lineNo, text: line },
        },
      );
    }
    const id = Number.parseInt(device[1]!, 16);
    if (!devices.has(id)) devices.set(id, device[2]!.trim());
  }
  return { source, origin, vendorId: NVIDIA_VENDOR_ID, devices };
}

/** The pci.ids model name of an NVIDIA device; never a name listed under another vendor. */
export function lookupNvidiaDeviceName(db: PciIdsDb | undefined, deviceId: number): string | undefined {
  return db?.devices.get(deviceId);
}

/** 1-based line number of the character at `index`. */
function countLines(text: string, index: number): number {
  let lines = 1;
  for (let at = text.indexOf('\n'); at !== -1 && at < index; at = text.indexOf('\n', at + 1)) lines += 1;
  return lines;
}
