import {
  behindVmdError,
  cardFunctions,
  GpuccError,
  isBridge,
  isVirtualFunction,
  isVmdDomainAddress,
  type PciAddress,
  type PciDevice,
  parsePciAddress,
  slotOf,
  vmdControllerOf,
} from '@gpucc/hal';
import type { Observation } from './observe.js';

export type Selection = { all: true } | { devices: string[] };

export interface SelectOptions {
  nvswitches: boolean;
}

/**
 * The devices the user asked for, validated before anything else happens: a bad or unknown
 * address, a device behind Intel VMD, another vendor's device, a VF or a companion function is refused
 * with a hint.
 */
export function selectTargets(observation: Observation, selection: Selection, options: SelectOptions): PciDevice[] {
  const { topology } = observation;
  const eligible = (d: PciDevice) =>
    !isVirtualFunction(d) &&
    !isVmdDomainAddress(d.address) && // never passable (docs/facts/real-hosts.md#devices-behind-intel-vmd-cannot-be-passed-through)
    (d.kind === 'gpu' || (options.nvswitches && d.kind === 'nvswitch'));
  if ('all' in selection) return topology.devices.filter(eligible);

  const chosen: PciDevice[] = [];
  for (const raw of selection.devices) {
    const address = parsePciAddress(raw);
    const device = topology.byAddress.get(address);
    const unreadable = topology.problems.find((p) => p.details.address === address);
    if (!device && unreadable) throw unreadable; // it exists, but cannot be read: named, nothing done
    if (!device) {
      throw new GpuccError('ERR_GPUCC_DEVICE_NOT_FOUND', `no PCI device ${address} on this host`, {
        hint: 'list the GPUs with: vfio-manager status',
        details: { device: address },
      });
    }
    if (isVmdDomainAddress(address)) throw behindVmdError(address, vmdControllerOf(address, device.sysfsPath));
    const why = refusal(device, options, topology.devices);
    if (why) {
      throw new GpuccError('ERR_GPUCC_NOT_A_TARGET', `${address} cannot be selected: ${why.reason}`, {
        hint: why.hint,
        details: { device: address },
      });
    }
    if (!chosen.includes(device)) chosen.push(device);
  }
  return chosen;
}

function refusal(
  device: PciDevice,
  options: SelectOptions,
  all: readonly PciDevice[],
): { reason: string; hint: string } | undefined {
  if (isBridge(device)) {
    return {
      reason: 'it is a PCI bridge',
      hint: 'bridges are never bound (vfio-pci refuses them, VFIO accepts them in a group): select the GPU behind it',
    };
  }
  if (device.vendor !== 0x10de) {
    return {
      reason: `it is not an NVIDIA device (vendor 0x${device.vendor.toString(16)})`,
      hint: 'select NVIDIA GPUs only; other devices in a GPU group are handled with it',
    };
  }
  if (isVirtualFunction(device)) {
    return { reason: 'it is an SR-IOV virtual function', hint: `select its physical function ${device.physfn}` };
  }
  if (device.kind === 'nvswitch' && !options.nvswitches) {
    return {
      reason: 'it is an NVSwitch',
      hint: 'pass --nvswitches to bind NVSwitches (full passthrough without host Fabric Manager)',
    };
  }
  if (device.kind !== 'gpu' && device.kind !== 'nvswitch') {
    const owner = all.find((d) => d.kind === 'gpu' && slotOf(d.address) === slotOf(device.address));
    return {
      reason: 'it is a companion function, not a GPU',
      hint: owner
        ? `select the GPU ${owner.address}; its card's functions follow it`
        : 'select the GPU function of the card',
    };
  }
  return undefined;
}

/** Every function of the targets' cards: ours to bind. */
export function ownFunctions(observation: Observation, targets: readonly PciDevice[]): Set<PciAddress> {
  const own = new Set<PciAddress>();
  for (const target of targets)
    for (const address of cardFunctions(observation.topology, target.address)) own.add(address);
  return own;
}
