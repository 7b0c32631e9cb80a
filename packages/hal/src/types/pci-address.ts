import { GpuccError } from '../errors/index.js';

declare const pciAddressBrand: unique symbol;
/**
 * A validated PCI address `dddd:bb:dd.f` (or `ddddd:bb:dd.f` in a domain above 0xffff), lower-case.
 * Only values of this type reach a path.
 */
export type PciAddress = string & { readonly [pciAddressBrand]: true };

/**
 * The kernel names a function `%04x:%02x:%02x.%d`: the domain has 4 hex digits, or 5 from 0x10000 (an
 * Intel VMD domain; docs/facts/real-hosts.md#pci-domains-can-be-wider-than-four-digits), never with a
 * leading zero past the fourth digit. Bus 2 digits, device 00-1f, function 0-7. Unanchored, for patterns
 * that embed it (the simulator's kernel); anchored below.
 */
export const PCI_ADDRESS_PATTERN = '(?:[0-9a-f]{4}|[1-9a-f][0-9a-f]{4}):[0-9a-f]{2}:[01][0-9a-f]\\.[0-7]';
const PCI_ADDRESS = new RegExp(`^${PCI_ADDRESS_PATTERN}$`);
/** The largest domain an ACPI segment (`_SEG`, 16 bits) can give; the kernel numbers VMD domains above it. */
const LAST_ACPI_DOMAIN = 0xffff;

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
      : 'use the full form dddd:bb:dd.f as in /sys/bus/pci/devices, e.g. 0000:43:00.0 (10000:01:00.0 in an Intel VMD domain)';
  throw new GpuccError('ERR_GPUCC_INVALID_PCI_ADDRESS', `invalid PCI address ${JSON.stringify(value)}`, {
    hint,
    details: { value },
  });
}

/** `dddd:bb:dd`, the physical slot shared by all functions of one card. */
export function slotOf(address: PciAddress): string {
  return address.slice(0, address.lastIndexOf('.'));
}

export function functionOf(address: PciAddress): number {
  return Number(address.slice(address.lastIndexOf('.') + 1));
}

export function pciDomainOf(address: PciAddress): number {
  return Number.parseInt(address.slice(0, address.indexOf(':')), 16);
}

/**
 * A domain above 0xffff is no ACPI segment: on x86 the kernel makes one for each Intel VMD controller
 * (docs/facts/real-hosts.md#pci-domains-can-be-wider-than-four-digits).
 */
export function isVmdDomainAddress(address: PciAddress): boolean {
  return pciDomainOf(address) > LAST_ACPI_DOMAIN;
}

/** Numeric order of addresses: by domain, then bus, device and function (fixed width after the domain). */
export function comparePciAddresses(a: PciAddress, b: PciAddress): number {
  const byDomain = pciDomainOf(a) - pciDomainOf(b);
  if (byDomain !== 0) return byDomain;
  const restA = a.slice(a.indexOf(':'));
  const restB = b.slice(b.indexOf(':'));
  return restA < restB ? -1 : restA > restB ? 1 : 0;
}
