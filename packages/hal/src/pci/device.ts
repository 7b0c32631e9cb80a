import path from 'node:path';
import { GpuccError, isGpuccError } from '../errors/index.js';
import type { HostRoot } from '../fs/index.js';
import { isPciAddress, type PciAddress, parsePciAddress } from '../types/index.js';
import { classifyPci } from './classify.js';
import {
  parseBootVga,
  parseDevNumbers,
  parseDriverName,
  parseDriverOverride,
  parseGroupNumber,
  parseHex,
  parseNumaNode,
  parsePciUevent,
  parseResetMethods,
  parseUnsigned,
  parseVfioDevName,
} from './parse.js';
import type { PciDevice, SriovInfo, VfioCdev } from './types.js';

export const PCI_DEVICES_DIR = 'sys/bus/pci/devices';
/** One directory per loaded PCI driver, with an entry per function bound to it. */
export const PCI_DRIVERS_DIR = 'sys/bus/pci/drivers';
const CONSUMER_PREFIX = 'consumer:pci:';
const VIRTFN = /^virtfn(\d+)$/;

/**
 * Reads one PCI function. Attributes are read from the real device directory, and only those its
 * listing shows, so a missing optional attribute costs no failed syscall.
 */
export function readPciDevice(sysfs: HostRoot, address: PciAddress, warnings: GpuccError[] = []): PciDevice {
  const bdf = parsePciAddress(address);
  const dir = deviceDir(sysfs, bdf);
  const names = sysfs.readdir(dir);
  if (names.length === 0) throw notFound(sysfs, bdf); // a dangling bus link: the device went away
  const entries = new Set(names);
  const attrs = new Attributes(sysfs, dir, bdf, entries, warnings);

  // The uevent carries the IDs, class and driver in one read (syscalls dominate discovery time);
  // trees without one (hand-made, captured) are read attribute by attribute.
  const uevent = attrs.optional('uevent', parsePciUevent, 'KEY=VALUE lines with PCI_ID and PCI_CLASS');
  const vendor =
    uevent?.vendor ?? attrs.required('vendor', (raw) => parseHex(raw, 4), 'a 16-bit hex ID such as 0x10de');
  const device =
    uevent?.device ?? attrs.required('device', (raw) => parseHex(raw, 4), 'a 16-bit hex ID such as 0x2331');
  const classCode =
    uevent?.classCode ?? attrs.required('class', (raw) => parseHex(raw, 6), 'a 24-bit hex class such as 0x030200');
  const subsystemVendor = uevent
    ? uevent.subsystemVendor
    : attrs.soft('subsystem_vendor', (raw) => parseHex(raw, 4), 'a 16-bit hex ID');
  const subsystemDevice = uevent
    ? uevent.subsystemDevice
    : attrs.soft('subsystem_device', (raw) => parseHex(raw, 4), 'a 16-bit hex ID');
  // Descriptive attributes: one that cannot be read costs that attribute (unknown, with a warning), not the device.
  const revision = attrs.soft('revision', (raw) => parseHex(raw, 2), 'an 8-bit hex revision such as 0xa1');
  const numaNode = attrs.soft('numa_node', parseNumaNode, 'a NUMA node number or -1') ?? -1;
  const override = attrs.optional('driver_override', parseDriverOverride, 'a driver name or (null)');
  const resetMethods = attrs.soft('reset_method', parseResetMethods, 'space-separated reset method names') ?? [];
  const bootVga = attrs.soft('boot_vga', parseBootVga, '0 or 1');
  const sriov = readSriov(attrs);
  const driverName = uevent ? uevent.driver : attrs.linkName('driver');
  const driver =
    driverName === undefined
      ? undefined
      : attrs.check('driver', driverName, parseDriverName(driverName), 'a link to bus/pci/drivers/<driver>');
  const groupName = attrs.linkName('iommu_group');
  const iommuGroup =
    groupName === undefined
      ? undefined
      : attrs.check('iommu_group', groupName, parseGroupNumber(groupName), 'a link to iommu_groups/<N>');
  const physfn = attrs.linkAddress('physfn');
  const virtfns = readVirtfns(attrs, names);
  const consumers = readConsumers(attrs, names);
  const vfioDevice = entries.has('vfio-dev') ? readVfioDevice(sysfs, dir) : undefined;
  const vfioCdev = vfioDevice ? readVfioCdev(attrs, vfioDevice) : undefined;

  return {
    address: bdf,
    vendor,
    device,
    class: classCode,
    ...(subsystemVendor === undefined ? {} : { subsystemVendor }),
    ...(subsystemDevice === undefined ? {} : { subsystemDevice }),
    ...(revision === undefined ? {} : { revision }),
    numaNode,
    ...(driver === undefined ? {} : { driver }),
    ...(override == null ? {} : { driverOverride: override }),
    ...(iommuGroup === undefined ? {} : { iommuGroup }),
    ...(vfioDevice === undefined ? {} : { vfioDevice }),
    ...(vfioCdev === undefined ? {} : { vfioCdev }),
    ...(physfn === undefined ? {} : { physfn }),
    virtfns,
    ...(sriov === undefined ? {} : { sriov }),
    consumers,
    resetMethods,
    hasResetAttribute: entries.has('reset'),
    ...(bootVga === undefined ? {} : { bootVga }),
    sysfsPath: dir,
    kind: classifyPci(vendor, classCode),
    ...(attrs.unknown.length > 0 ? { unknownAttributes: attrs.unknown.map((w) => String(w.details.attribute)) } : {}),
  };
}

/** The real device directory, from the bus link (its depth depends on the bridges above it). */
function deviceDir(sysfs: HostRoot, address: PciAddress): string {
  const busEntry = `${PCI_DEVICES_DIR}/${address}`;
  const target = sysfs.resolveLink(busEntry);
  if (target !== undefined) return target;
  // Not a link: a captured tree may hold the device directory itself.
  if (sysfs.kindOf(busEntry) === 'dir') return busEntry;
  throw notFound(sysfs, address);
}

function notFound(sysfs: HostRoot, address: PciAddress): GpuccError {
  return new GpuccError(
    'ERR_GPUCC_DEVICE_NOT_FOUND',
    `no PCI device ${address} under ${sysfs.display(PCI_DEVICES_DIR)}`,
    {
      hint: 'check the address with `lspci -D`; the device may have been removed or the host root is wrong',
      details: { address },
    },
  );
}

function readSriov(attrs: Attributes): SriovInfo | undefined {
  const totalVfs = attrs.optional('sriov_totalvfs', parseUnsigned, 'an unsigned number');
  if (totalVfs === undefined) return undefined;
  const numVfs = attrs.optional('sriov_numvfs', parseUnsigned, 'an unsigned number') ?? 0;
  return { totalVfs, numVfs };
}

function readVirtfns(attrs: Attributes, names: string[]): PciAddress[] {
  const links: { index: number; address: PciAddress }[] = [];
  for (const name of names) {
    const match = VIRTFN.exec(name);
    if (!match) continue;
    const address = attrs.linkAddress(name);
    if (address !== undefined) links.push({ index: Number(match[1]), address });
  }
  // readdir order puts virtfn10 before virtfn2; VF order is numeric.
  return links.sort((a, b) => a.index - b.index).map((l) => l.address);
}

function readConsumers(attrs: Attributes, names: string[]): PciAddress[] {
  const consumers: PciAddress[] = [];
  for (const name of names) {
    if (!name.startsWith(CONSUMER_PREFIX)) continue;
    const target = name.slice(CONSUMER_PREFIX.length);
    consumers.push(attrs.check(name, target, isPciAddress(target) ? target : undefined, 'consumer:pci:<dddd:bb:dd.f>'));
  }
  return consumers;
}

/** The function's VFIO device registration, `vfio-dev/vfio<N>` (with or without a char device). */
function readVfioDevice(sysfs: HostRoot, dir: string): { name: string; index: number } | undefined {
  for (const name of sysfs.readdir(`${dir}/vfio-dev`)) {
    const index = parseVfioDevName(name);
    if (index !== undefined) return { name, index };
  }
  return undefined;
}

/**
 * Its char device: the registration's `dev` file. Absent on a kernel without CONFIG_VFIO_DEVICE_CDEV
 * (the registration has no device number), and while an unbind removes it.
 */
function readVfioCdev(attrs: Attributes, registration: { name: string; index: number }): VfioCdev | undefined {
  const { name, index } = registration;
  const numbers = attrs.optionalPath(`vfio-dev/${name}/dev`, parseDevNumbers, 'major:minor such as 511:0');
  return numbers === undefined ? undefined : { name, index, ...numbers };
}

/** Reads the attributes of one device directory and names the file in every error. */
class Attributes {
  constructor(
    private readonly sysfs: HostRoot,
    private readonly dir: string,
    private readonly address: PciAddress,
    private readonly entries: ReadonlySet<string>,
    /** The warnings of soft() reads; shared with the caller. */
    readonly unknown: GpuccError[],
  ) {}

  /** An optional attribute that describes the device without identifying it: unreadable → undefined and a warning. */
  soft<T>(name: string, parse: (raw: string) => T | undefined, expected: string): T | undefined {
    try {
      return this.optional(name, parse, expected);
    } catch (error) {
      if (!isGpuccError(error)) throw error;
      error.details.address = this.address;
      error.details.attribute = name;
      this.unknown.push(
        new GpuccError(error.code, `${this.address}: ${name} is unknown: ${error.message}`, {
          hint: 'the device is still used; only this attribute is ignored. Fix or report the file',
          cause: error,
          details: { ...error.details },
        }),
      );
      return undefined;
    }
  }

  required<T>(name: string, parse: (raw: string) => T | undefined, expected: string): T {
    const raw = this.sysfs.read(`${this.dir}/${name}`);
    return this.check(name, raw, parse(raw), expected);
  }

  optional<T>(name: string, parse: (raw: string) => T | undefined, expected: string): T | undefined {
    if (!this.entries.has(name)) return undefined;
    return this.optionalPath(name, parse, expected);
  }

  optionalPath<T>(relName: string, parse: (raw: string) => T | undefined, expected: string): T | undefined {
    const raw = this.sysfs.readOptional(`${this.dir}/${relName}`);
    return raw === undefined ? undefined : this.check(relName, raw, parse(raw), expected);
  }

  /** The last component of a link's target (driver name, group number, BDF). */
  linkName(name: string): string | undefined {
    if (!this.entries.has(name)) return undefined;
    const target = this.sysfs.readlink(`${this.dir}/${name}`);
    return target === undefined ? undefined : path.posix.basename(target);
  }

  linkAddress(name: string): PciAddress | undefined {
    const target = this.linkName(name);
    if (target === undefined) return undefined;
    return this.check(name, target, isPciAddress(target) ? target : undefined, 'a link to a PCI device directory');
  }

  check<T>(name: string, raw: string, value: T | undefined, expected: string): T {
    if (value !== undefined) return value;
    const file = `${this.dir}/${name}`;
    throw new GpuccError(
      'ERR_GPUCC_MALFORMED_ATTRIBUTE',
      `${this.sysfs.display(file)} holds ${JSON.stringify(raw)}, expected ${expected}`,
      {
        hint: 'the kernel never prints this: the host tree is damaged or was written by hand; fix or remove the file',
        details: { address: this.address, path: file, content: raw, expected },
      },
    );
  }
}
