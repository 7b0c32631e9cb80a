/**
 * Pure parsers for the text the kernel prints in PCI sysfs attributes
 * (docs/facts/kernel-sysfs-pci.md#attribute-formats). Each returns undefined for content the kernel never prints;
 * the caller turns that into an error naming the file, so malformed content never becomes a silent default.
 */

/** Text without the one trailing newline every kernel attribute ends with (also accepted when absent). */
export function stripNewline(raw: string): string {
  return raw.endsWith('\n') ? raw.slice(0, -1) : raw;
}

const HEX_PATTERNS = new Map<number, RegExp>();

/**
 * `0x%0<width>x`: `0x` and at most `width` hex digits. Fewer digits are accepted (go-nvlib's mock
 * writes the class as `0x30200`); the value is parsed as a number, never compared as a string.
 */
export function parseHex(raw: string, width: number): number | undefined {
  let pattern = HEX_PATTERNS.get(width);
  if (pattern === undefined) {
    pattern = new RegExp(`^0x[0-9a-fA-F]{1,${width}}$`);
    HEX_PATTERNS.set(width, pattern);
  }
  const text = stripNewline(raw);
  return pattern.test(text) ? Number.parseInt(text.slice(2), 16) : undefined;
}

/** `%u`: unsigned decimal that fits 32 bits. */
export function parseUnsigned(raw: string): number | undefined {
  const text = stripNewline(raw);
  if (!/^\d{1,10}$/.test(text)) return undefined;
  const value = Number(text);
  return value <= 0xffff_ffff ? value : undefined;
}

/** `numa_node` is `%d`: -1 means no affinity. */
export function parseNumaNode(raw: string): number | undefined {
  const text = stripNewline(raw);
  if (text === '-1') return -1;
  return parseUnsigned(text);
}

/**
 * A driver name gpucc will use: callers join it into `drivers/<name>/…`, so `.`, `..`, slashes and
 * whitespace are refused (no kernel driver is named so).
 */
export function parseDriverName(name: string): string | undefined {
  return /^[^\s/]+$/.test(name) && name !== '.' && name !== '..' ? name : undefined;
}

/** `driver_override` is `%s\n`, and `(null)\n` when unset: null stands for "unset". */
export function parseDriverOverride(raw: string): string | null | undefined {
  const text = stripNewline(raw);
  // The kernel never prints an empty override: clearing it prints (null).
  return text === '(null)' ? null : parseDriverName(text);
}

/** `reset_method`: space-separated method names, or nothing at all when none is enabled. */
export function parseResetMethods(raw: string): string[] | undefined {
  const text = stripNewline(raw);
  if (text === '') return [];
  const methods = text.split(' ');
  return methods.every((m) => /^[a-z][a-z0-9_]*$/.test(m)) ? methods : undefined;
}

/** `boot_vga` is `%u`: 0 or 1. */
export function parseBootVga(raw: string): boolean | undefined {
  const text = stripNewline(raw);
  return text === '1' ? true : text === '0' ? false : undefined;
}

/** `vfio-dev/vfio<N>/dev` is `%u:%u\n` (major:minor). */
export function parseDevNumbers(raw: string): { major: number; minor: number } | undefined {
  const match = /^(\d{1,10}):(\d{1,10})$/.exec(stripNewline(raw));
  if (!match) return undefined;
  return { major: Number(match[1]), minor: Number(match[2]) };
}

/** An IOMMU group number, as named by `/sys/kernel/iommu_groups/<N>`. */
export function parseGroupNumber(name: string): number | undefined {
  return /^\d{1,10}$/.test(name) ? Number(name) : undefined;
}

/** `vfio<N>` (or `noiommu-vfio<N>` in no-IOMMU mode) under `vfio-dev/`. */
export function parseVfioDevName(name: string): number | undefined {
  const match = /^(?:noiommu-)?vfio(\d{1,10})$/.exec(name);
  return match ? Number(match[1]) : undefined;
}

/** The PCI facts of a device's `uevent` (what udev reads): one read instead of six. */
export interface PciUevent {
  driver?: string;
  vendor: number;
  device: number;
  classCode: number;
  subsystemVendor?: number;
  subsystemDevice?: number;
}

const HEX_PAIR = /^([0-9A-Fa-f]{4}):([0-9A-Fa-f]{4})$/;

/**
 * Parses the kernel's PCI uevent (`DRIVER=`, `PCI_CLASS=%04X`, `PCI_ID=%04X:%04X`,
 * `PCI_SUBSYS_ID=%04X:%04X`, ...); undefined when a required key is missing or malformed.
 */
export function parsePciUevent(raw: string): PciUevent | undefined {
  const values = new Map<string, string>();
  for (const line of raw.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) values.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const id = HEX_PAIR.exec(values.get('PCI_ID') ?? '');
  const classText = values.get('PCI_CLASS') ?? '';
  if (!id || !/^[0-9A-Fa-f]{1,6}$/.test(classText)) return undefined;
  const subsys = values.has('PCI_SUBSYS_ID') ? HEX_PAIR.exec(values.get('PCI_SUBSYS_ID')!) : undefined;
  if (subsys === null) return undefined;
  const driver = values.get('DRIVER');
  if (driver !== undefined && parseDriverName(driver) === undefined) return undefined;
  return {
    ...(driver === undefined ? {} : { driver }),
    vendor: Number.parseInt(id[1]!, 16),
    device: Number.parseInt(id[2]!, 16),
    classCode: Number.parseInt(classText, 16),
    ...(subsys
      ? { subsystemVendor: Number.parseInt(subsys[1]!, 16), subsystemDevice: Number.parseInt(subsys[2]!, 16) }
      : {}),
  };
}
