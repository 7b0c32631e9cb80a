import { isVirtualFunction, isVmdDomainAddress, type PciAddress, type PciTopology } from '@gpucc/hal';
import {
  type Arch,
  archOf,
  type CapabilityTable,
  isCcCapable,
  isPpcieCapable,
  modelName,
  NVSWITCH_GEN3,
} from './capability.js';

/** An NVIDIA GPU or NVSwitch of the host, with what it can do. Plain data. */
export interface CcDevice {
  address: PciAddress;
  kind: 'gpu' | 'nvswitch';
  deviceId: number;
  /** The model name the CC tools print (H100, B200, NVSwitch_gen3), or `?`. */
  name: string;
  arch: Arch;
  ccCapable: boolean;
  ppcieCapable: boolean;
  /** The driver bound now; undefined = unbound. */
  driver?: string;
}

/**
 * Every NVIDIA GPU and NVSwitch physical function, sorted by address. VFs are never switched, nor is a
 * device behind Intel VMD, which no VM can get (docs/facts/real-hosts.md#devices-behind-intel-vmd-cannot-be-passed-through).
 */
export function findCcDevices(topology: PciTopology, table: CapabilityTable): CcDevice[] {
  return topology.devices
    .filter(
      (d) =>
        d.vendor === 0x10de &&
        (d.kind === 'gpu' || d.kind === 'nvswitch') &&
        !isVirtualFunction(d) &&
        !isVmdDomainAddress(d.address),
    )
    .map((d) => {
      const kind = d.kind as 'gpu' | 'nvswitch';
      return {
        address: d.address,
        kind,
        deviceId: d.device,
        name: modelName(kind, d.device) ?? '?',
        arch: kind === 'gpu' ? archOf(d.device) : d.device === NVSWITCH_GEN3 ? 'hopper' : 'older',
        ccCapable: isCcCapable(kind, d.device, table),
        ppcieCapable: isPpcieCapable(kind, d.device, table),
        ...(d.driver === undefined ? {} : { driver: d.driver }),
      };
    });
}

/** A driver that lets the CC tool work: none, or a VFIO driver (vfio-pci or a variant such as nvgrace_gpu_vfio_pci). */
export function isFreeForCcTool(driver: string | undefined): boolean {
  return driver === undefined || /vfio/.test(driver);
}

/** The device alone, without what was observed about it. */
export function ccDeviceOf(d: CcDevice): CcDevice {
  return {
    address: d.address,
    kind: d.kind,
    deviceId: d.deviceId,
    name: d.name,
    arch: d.arch,
    ccCapable: d.ccCapable,
    ppcieCapable: d.ppcieCapable,
    ...(d.driver === undefined ? {} : { driver: d.driver }),
  };
}

export const hexId = (id: number) => `0x${id.toString(16).padStart(4, '0')}`;
