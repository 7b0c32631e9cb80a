import type { PciDevice, PciKind } from './types.js';

// Same value as naming's NVIDIA_VENDOR_ID (exported there); kept local so pci does not depend on naming.
export const NVIDIA_VENDOR_ID = 0x10de;
export const NVSWITCH_CLASS = 0x068000;
const DISPLAY_BASE_CLASS = 0x03;
const VGA_SUBCLASS = 0x00;
const DISPLAY_3D_SUBCLASS = 0x02;
const HOST_BRIDGE_CLASS = 0x0600; // base + subclass, any prog-if
const PCI_BRIDGE_CLASS = 0x0604;

/** The kind from the numeric IDs. NVSwitch (0x0680) is "bridge, other", not a PCI bridge. */
export function classifyPci(vendor: number, classCode: number): PciKind {
  const base = classCode >>> 16;
  const sub = (classCode >>> 8) & 0xff;
  if (
    vendor === NVIDIA_VENDOR_ID &&
    base === DISPLAY_BASE_CLASS &&
    (sub === VGA_SUBCLASS || sub === DISPLAY_3D_SUBCLASS)
  ) {
    return 'gpu';
  }
  if (vendor === NVIDIA_VENDOR_ID && classCode === NVSWITCH_CLASS) return 'nvswitch';
  const baseSub = classCode >>> 8;
  if (baseSub === PCI_BRIDGE_CLASS || baseSub === HOST_BRIDGE_CLASS) return 'bridge';
  return 'other';
}

export function isNvidia(device: PciDevice): boolean {
  return device.vendor === NVIDIA_VENDOR_ID;
}

export function isGpu(device: PciDevice): boolean {
  return device.kind === 'gpu';
}

export function isNvSwitch(device: PciDevice): boolean {
  return device.kind === 'nvswitch';
}

export function isBridge(device: PciDevice): boolean {
  return device.kind === 'bridge';
}

/** SR-IOV VFs carry a `physfn` link; NVIDIA tools skip them. */
export function isVirtualFunction(device: PciDevice): boolean {
  return device.physfn !== undefined;
}
