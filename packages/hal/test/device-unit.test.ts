// The published device unit (one VFIO device per IOMMU group) on hand-made topologies: what both
// kata-manager's CDI specs and the device plugin's inventory are built from.
import { describe, expect, it } from 'vitest';
import {
  DeviceIdClaims,
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
const HOST = {
  legacy: { model: 'legacy', iommufd: false },
  iommufd: { model: 'iommufd', iommufd: true },
  noiommu: { model: 'noiommu', iommufd: false },
} as const;

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

    const unit = vfioDeviceUnit(units[0]!, topology, HOST.legacy);
    expect(unit.id).toBe('7');
    expect(unit.deviceType).toBe('gpu');
    expect(unit.members.map((m) => m.address)).toEqual(['0000:41:00.0', '0000:41:00.1', '0000:42:00.0']);
    expect(unit.group).toContain('0000:43:00.0'); // unreadable members stay visible to health checks
    expect(unit.nodes).toEqual(['dev/vfio/vfio', 'dev/vfio/7']);
    expect(unit.pendingCdevs).toEqual([]);
    expect(unitNaming(unit, { pciIds: undefined, aliases: {} }).cdiKind).toBe('nvidia.com/pgpu');
    expect(vfioDeviceUnit([other], topology, HOST.noiommu).nodes).toEqual(['dev/vfio/vfio', 'dev/vfio/noiommu-9']);
  });

  it('on iommufd names the unit by its first cdev, lists every member cdev and says which are late', () => {
    const gpu = fn('0000:41:00.0', { iommuGroup: 7, vfioCdev: cdev(3) });
    const late = fn('0000:41:00.1', { iommuGroup: 7, kind: 'other', class: 0x040300 });
    const unit = vfioDeviceUnit([gpu], topologyOf([gpu, late]), HOST.iommufd, 'iommufd');
    expect(unit.id).toBe('3');
    expect(unit.nodes).toEqual(['dev/vfio/devices/vfio3']);
    expect(unit.pendingCdevs).toEqual(['0000:41:00.1']);

    const waiting = fn('0000:41:00.0', { iommuGroup: 7 });
    expect(vfioDeviceUnit([waiting], topologyOf([waiting]), HOST.iommufd, 'iommufd').id).toBeUndefined();
  });

  it('refuses a function without an IOMMU group outside iommufd mode, with a coded error', () => {
    const lone = fn('0000:41:00.0');
    let caught: unknown;
    try {
      vfioDeviceUnit([lone], topologyOf([lone]), HOST.legacy);
    } catch (error) {
      caught = error;
    }
    expect(isGpuccError(caught, 'ERR_GPUCC_INVALID_DEVICE_NUMBER')).toBe(true);
  });

  describe('group or cdev, decided per unit', () => {
    const withCdev = fn('0000:41:00.0', { iommuGroup: 7, vfioCdev: cdev(2), vfioDevice: { name: 'vfio2', index: 2 } });
    // Registered with VFIO but no char device: a kernel without CONFIG_VFIO_DEVICE_CDEV.
    const registeredOnly = fn('0000:81:00.0', { iommuGroup: 2, vfioDevice: { name: 'vfio3', index: 3 } });
    const topology = topologyOf([withCdev, registeredOnly]);

    it('auto: the cdev where the unit has one and the host has /dev/iommu, else the group', () => {
      expect(vfioDeviceUnit([withCdev], topology, HOST.iommufd, 'auto').nodes).toEqual(['dev/vfio/devices/vfio2']);
      expect(vfioDeviceUnit([registeredOnly], topology, HOST.iommufd, 'auto').nodes).toEqual([
        'dev/vfio/vfio',
        'dev/vfio/2',
      ]);
      // Without /dev/iommu a cdev is not used even where one exists.
      expect(vfioDeviceUnit([withCdev], topology, HOST.legacy, 'auto').nodes).toEqual(['dev/vfio/vfio', 'dev/vfio/7']);
      expect(vfioDeviceUnit([withCdev], topology, HOST.iommufd, 'legacy').model).toBe('legacy');
    });

    it('iommufd: a coded error with the kernel option as its hint where the unit has no cdev', () => {
      const refusal = (host: (typeof HOST)[keyof typeof HOST], device: PciDevice) => {
        try {
          vfioDeviceUnit([device], topology, host, 'iommufd');
        } catch (error) {
          if (isGpuccError(error)) return [error.code, error.hint];
        }
        return undefined;
      };
      expect(refusal(HOST.iommufd, registeredOnly)).toEqual([
        'ERR_GPUCC_VFIO_CDEV_UNAVAILABLE',
        expect.stringMatching(/CONFIG_VFIO_DEVICE_CDEV/),
      ]);
      expect(refusal(HOST.legacy, withCdev)).toEqual([
        'ERR_GPUCC_VFIO_CDEV_UNAVAILABLE',
        expect.stringMatching(/CONFIG_IOMMUFD/),
      ]);
    });

    it('a group number equal to another unit’s cdev number: the later unit is refused, never named twice', () => {
      const claims = new DeviceIdClaims();
      const first = vfioDeviceUnit([withCdev], topology, HOST.iommufd, 'auto'); // cdev 2
      const second = vfioDeviceUnit([registeredOnly], topology, HOST.iommufd, 'auto'); // group 2
      expect([first.id, second.id]).toEqual(['2', '2']);
      expect(claims.claim('nvidia.com/pgpu', first)).toBeUndefined();
      expect(claims.claim('nvidia.com/pgpu', second)?.code).toBe('ERR_GPUCC_DEVICE_ID_CONFLICT');
      expect(claims.claim('nvidia.com/nvswitch', second)).toBeUndefined(); // another resource, another name space
    });
  });
});
