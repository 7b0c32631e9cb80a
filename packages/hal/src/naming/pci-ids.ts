import { GpuccError } from '../errors/index.js';
import type { Sysfs } from '../fs/index.js';

/** The NVIDIA part of a pci.ids file: device id -> model name, under vendor 0x10de only. */
export interface PciIdsDb {
  /** Host path (relative to the root) of the file it came from. */
  readonly source: string;
  readonly vendorId: typeof NVIDIA_VENDOR_ID;
  readonly devices: ReadonlyMap<number, string>;
}

export const NVIDIA_VENDOR_ID = 0x10de;

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
export function findPciIds(sysfs: Sysfs): string | undefined {
  for (const candidate of PCI_IDS_PATHS) {
    const file = followInsideRoot(sysfs, candidate);
    if (file !== undefined) return file;
  }
  return undefined;
}

// Distributions link pci.ids between these directories, often with absolute targets; following such
// a link with the OS would leave a mounted host root (/host), so links are resolved through Sysfs.
function followInsideRoot(sysfs: Sysfs, relPath: string): string | undefined {
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

/** Loads the host's pci.ids; undefined when there is none (callers fall back to ID-based names). */
export function loadPciIds(sysfs: Sysfs): PciIdsDb | undefined {
  const source = findPciIds(sysfs);
  if (source === undefined) return undefined;
  const text = sysfs.readOptional(source);
  return text === undefined ? undefined : parseNvidiaPciIds(text, source);
}

/**
 * Parses only the vendor 10de block of a pci.ids text: the file is ~1.3 MB and gpucc needs only
 * NVIDIA device names. Subsystem lines (two TABs) and comments are skipped; the block ends at the
 * next unindented line that is not a comment (the next vendor, or the class list).
 */
export function parseNvidiaPciIds(text: string, source: string): PciIdsDb {
  const devices = new Map<number, string>();
  const match = VENDOR_10DE.exec(text);
  if (match === null) return { source, vendorId: NVIDIA_VENDOR_ID, devices };

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
        `malformed NVIDIA device line ${lineNo} in /${source}: ${JSON.stringify(line)}`,
        {
          hint: 'a device line is a TAB, 4 hex digits, spaces and a name; reinstall pci.ids (hwdata / pciutils) or run update-pciids',
          details: { path: source, line: lineNo, text: line },
        },
      );
    }
    const id = Number.parseInt(device[1]!, 16);
    if (!devices.has(id)) devices.set(id, device[2]!.trim());
  }
  return { source, vendorId: NVIDIA_VENDOR_ID, devices };
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
