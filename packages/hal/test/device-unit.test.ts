// The published device unit (one VFIO device per IOMMU group) on hand-made topologies: what both
// kata-manager's CDI specs and the device plugin's inventory are built from.
import { describe, expect, it } from 'vitest';
import {
  groupIntoUnits,
  isGpuccError,
  type PciAddress,
  type PciDevice,
  type PciTopology,
  unitNaming,
  vfioDeviceUnit,
} from '../src/index.js';

function fn(address: string, extra: Partial<PciDevice> = {}): PciDevice {
  return {
    address: address as PciAddress,
    vendor: 0x10de,
    device: 0x2330,
    class: 0x030200,
    numaNode: 0,
    virtfns: [],
    consumers: [],
    resetMethods: [],
    hasResetAttribute: true,
    sysfsPath: `sys/devices/pci0000:00/${address}`,
    kind: 'gpu',
    driver: 'vfio-pci',
    ...extra,
  };
}

function topologyOf(devices: PciDevice[], unreadable: Record<number, string[]> = {}): PciTopology {
  const groups = new Map<number, PciAddress[]>();
  for (const d of devices)
    if (d.iommuGroup !== undefined) groups.set(d.iommuGroup, [...(groups.get(d.iommuGroup) ?? []), d.address]);
  for (const [group, addresses] of Object.entries(unreadable))
    groups.set(Number(group), [...(groups.get(Number(group)) ?? []), ...(addresses as PciAddress[])]);
  return {
    devices,
    byAddress: new Map(devices.map((d) => [d.address, d])),
    addresses: devices.map((d) => d.address),
    groups,
    iommuEnabled: true,
    problems: [],
    warnings: [],
  };
}

const cdev = (index: number) => ({ name: `vfio${index}`, index, major: 511, minor: index });

describe('the VFIO device unit', () => {
  it('collapses the GPUs of one group into one unit named by the first, with every VFIO member but bridges', () => {
    const gpuA = fn('0000:41:00.0', { iommuGroup: 7 });
    const audio = fn('0000:41:00.1', { iommuGroup: 7, kind: 'other', class: 0x040300 });
    const bridge = fn('0000:40:00.0', { iommuGroup: 7, kind: 'bridge', class: 0x060400, driver: 'pcieport' });
    const gpuB = fn('0000:42:00.0', { iommuGroup: 7 });
    const other = fn('0000:81:00.0', { iommuGroup: 9 });
    const topology = topologyOf([bridge, gpuA, audio, gpuB, other], { 7: ['0000:43:00.0'] });

    const units = groupIntoUnits([gpuA, gpuB, other]);
    expect(units.map((u) => u.map((d) => d.address))).toEqual([['0000:41:00.0', '0000:42:00.0'], ['0000:81:00.0']]);

    const unit = vfioDeviceUnit(units[0]!, topology, 'legacy');
    expect(unit.id).toBe('7');
    expect(unit.deviceType).toBe('gpu');
    expect(unit.members.map((m) => m.address)).toEqual(['0000:41:00.0', '0000:41:00.1', '0000:42:00.0']);
    expect(unit.group).toContain('0000:43:00.0'); // unreadable members stay visible to health checks
    expect(unit.nodes).toEqual(['dev/vfio/vfio', 'dev/vfio/7']);
    expect(unit.pendingCdevs).toEqual([]);
    expect(unitNaming(unit, { pciIds: undefined, aliases: {} }).cdiKind).toBe('nvidia.com/pgpu');
    expect(vfioDeviceUnit([other], topology, 'noiommu').nodes).toEqual(['dev/vfio/vfio', 'dev/vfio/noiommu-9']);
  });

  it('on iommufd names the unit by its first cdev, lists every member cdev and says which are late', () => {
    const gpu = fn('0000:41:00.0', { iommuGroup: 7, vfioCdev: cdev(3) });
    const late = fn('0000:41:00.1', { iommuGroup: 7, kind: 'other', class: 0x040300 });
    const unit = vfioDeviceUnit([gpu], topologyOf([gpu, late]), 'iommufd');
    expect(unit.id).toBe('3');
    expect(unit.nodes).toEqual(['dev/vfio/devices/vfio3']);
    expect(unit.pendingCdevs).toEqual(['0000:41:00.1']);

    const waiting = fn('0000:41:00.0', { iommuGroup: 7 });
    expect(vfioDeviceUnit([waiting], topologyOf([waiting]), 'iommufd').id).toBeUndefined();
  });

  it('refuses a function without an IOMMU group outside iommufd mode, with a coded error', () => {
    const lone = fn('0000:41:00.0');
    let caught: unknown;
    try {
      vfioDeviceUnit([lone], topologyOf([lone]), 'legacy');
    } catch (error) {
      caught = error;
    }
    expect(isGpuccError(caught, 'ERR_GPUCC_INVALID_DEVICE_NUMBER')).toBe(true);
  });
});
