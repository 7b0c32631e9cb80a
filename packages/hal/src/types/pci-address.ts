import { GpuccError } from '../errors/index.js';

declare const pciAddressBrand: unique symbol;
/** A validated PCI address `dddd:bb:dd.f`, lower-case. Only values of this type reach a path. */
export type PciAddress = string & { readonly [pciAddressBrand]: true };

// Domain 4 hex digits, bus 2, device 00-1f, function 0-7: the kernel's "%04x:%02x:%02x.%d".
const PCI_ADDRESS = /^[0-9a-f]{4}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]$/;

export function isPciAddress(value: unknown): value is PciAddress {
  return typeof value === 'string' && PCI_ADDRESS.test(value);
}

/** Validates a PCI address exactly as the kernel prints it; anything else is refused. */
export function parsePciAddress(value: string): PciAddress {
  if (isPciAddress(value)) return value;
  const lower = typeof value === 'string' ? value.toLowerCase() : '';
  const hint = PCI_ADDRESS.test(lower)
    ? `write it in lower case: ${lower}`
    : /^[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$/.test(String(value))
      ? `add the PCI domain, e.g. 0000:${lower}`
      : 'use the full form dddd:bb:dd.f as in /sys/bus/pci/devices, e.g. 0000:43:00.0';
  throw new GpuccError('ERR_GPUCC_INVALID_PCI_ADDRESS', `invalid PCI address ${JSON.stringify(value)}`, {
    hint,
    details: { value },
  });
}

/** `dddd:bb:dd`, the physical slot shared by all functions of one card. */
export function slotOf(address: PciAddress): string {
  return address.slice(0, 10);
}

export function functionOf(address: PciAddress): number {
  return Number(address.slice(11));
}

/** Numeric order of addresses (which for this fixed-width format is also string order). */
export function comparePciAddresses(a: PciAddress, b: PciAddress): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
