import path from 'node:path';
import { GpuccError } from '../errors/index.js';
import { isPciAddress, isVmdDomainAddress, type PciAddress, pciDomainOf } from '../types/index.js';

/**
 * The Intel VMD controller above a device in a VMD domain: the VMD driver hangs the domain's root bus
 * (`pci10000:00`) under the controller's own directory, so the path component before it names the
 * controller (docs/facts/real-hosts.md#pci-domains-can-be-wider-than-four-digits). Undefined outside a
 * VMD domain, or when the path does not show it (a flattened captured tree).
 */
export function vmdControllerOf(address: PciAddress, sysfsPath: string): PciAddress | undefined {
  if (!isVmdDomainAddress(address)) return undefined;
  const parts = sysfsPath.split(path.posix.sep);
  const rootBus = parts.findIndex(
    (p) => /^pci[0-9a-f]{5}:[0-9a-f]{2}$/.test(p) && pciBusDomain(p) === pciDomainOf(address),
  );
  const controller = rootBus > 0 ? parts[rootBus - 1] : undefined;
  return isPciAddress(controller) ? controller : undefined;
}

function pciBusDomain(rootBus: string): number {
  return Number.parseInt(rootBus.slice(3, rootBus.indexOf(':')), 16);
}

/** Why a device in a VMD domain is never a target, for listings that skip it. */
export const BEHIND_VMD_REASON = 'behind an Intel VMD controller, which owns its config space and interrupts';

/**
 * The refusal for a device behind an Intel VMD controller: VMD owns its config space (reached through
 * the controller's BAR) and remaps its interrupts through the controller's MSI-X table, so neither
 * VFIO nor a VM can own it alone (docs/facts/real-hosts.md#devices-behind-intel-vmd-cannot-be-passed-through).
 */
export function behindVmdError(address: PciAddress, controller?: PciAddress): GpuccError {
  const where = controller ? `the Intel VMD controller ${controller}` : 'an Intel VMD controller';
  return new GpuccError(
    'ERR_GPUCC_BEHIND_VMD',
    `${address} sits behind ${where} and cannot be passed through to a VM: VMD owns its config space and interrupts`,
    {
      hint: 'choose a device outside the VMD domain; to pass this one through, disable VMD for its ports in the firmware (BIOS) setup so it appears in an ACPI domain (0000-ffff)',
      details: { device: address, ...(controller ? { vmdController: controller } : {}) },
    },
  );
}
