import {
  detectVfioModel,
  discoverPci,
  loadPciIds,
  localFs,
  type PciAddress,
  type PciDevice,
  resourceNamingFor,
} from '@gpucc/hal';
import { bindAll } from '@gpucc/testbed/fixtures';
import { boundNode, simNode } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import { nextDeviceState } from '../src/device-state.js';
import { buildInventory, scanInventory } from '../src/inventory.js';

const GPUS = { nvswitches: false, aliases: {} };
const ALL = { nvswitches: true, aliases: {} };

describe('inventory: what the plugin advertises', () => {
  it('hgx-h100-8 on VFIO: 8 nvidia.com/pgpu and 4 nvidia.com/nvswitch by IOMMU group, NUMA from numa_node', async () => {
    const { sysfs } = await boundNode('hgx-h100-8', { nvswitches: true });
    const inventory = scanInventory(sysfs, ALL, loadPciIds(sysfs));
    expect(inventory.model).toBe('legacy');
    expect(inventory.problems).toEqual([]);
    const gpus = inventory.devices.filter((d) => d.resourceName === 'nvidia.com/pgpu');
    const switches = inventory.devices.filter((d) => d.resourceName === 'nvidia.com/nvswitch');
    expect(gpus.map((d) => d.id)).toEqual(['23', '27', '31', '35', '39', '43', '47', '51']);
    expect(switches.map((d) => d.id)).toEqual(['56', '58', '60', '62']);
    expect(inventory.devices.every((d) => d.health === 'Healthy')).toBe(true);
    expect(gpus.map((d) => d.numaNodes)).toEqual([[0], [0], [0], [0], [1], [1], [1], [1]]);
    expect(gpus[0]).toMatchObject({
      type: 'gpu',
      cdiKind: 'nvidia.com/pgpu',
      iommuGroup: 23,
      functions: [{ address: '0000:13:00.0', pciId: '10de:2330', driver: 'vfio-pci' }],
      deviceNodes: ['/dev/vfio/vfio', '/dev/vfio/23'],
    });
  });

  it('advertises nothing that is not on VFIO, and says why for each device', async () => {
    const { sysfs } = simNode('hgx-h100-8');
    const inventory = scanInventory(sysfs, GPUS, loadPciIds(sysfs));
    expect(inventory.devices).toEqual([]);
    const reasons = Object.fromEntries(inventory.skipped.map((s) => [s.address, s.reason]));
    expect(reasons['0000:13:00.0']).toBe('on nvidia, not a VFIO driver');
    expect(reasons['0000:07:00.0']).toBe('NVSwitches are left out (--no-nvswitches)');
  });

  it('never advertises a VFIO-bound GPU behind an Intel VMD controller (domain 10000), and says why', async () => {
    const { sysfs } = await boundNode('h100-pcie-1');
    const topology = discoverPci(sysfs);
    const gpu = topology.devices.find((d) => d.kind === 'gpu')!;
    const inventoryOf = (device: PciDevice) =>
      buildInventory({
        ...GPUS,
        topology: { ...topology, devices: [device], byAddress: new Map([[device.address, device]]) },
        model: detectVfioModel(sysfs),
        pciIds: undefined,
        exists: () => true,
      });
    expect(inventoryOf(gpu).devices).toHaveLength(1); // the same GPU in an ACPI domain is advertised
    const behindVmd = inventoryOf({ ...gpu, address: '10000:01:00.0' as PciAddress });
    expect(behindVmd.devices).toEqual([]);
    expect(behindVmd.skipped).toEqual([
      expect.objectContaining({
        address: '10000:01:00.0',
        reason: expect.stringMatching(/behind an Intel VMD controller/),
      }),
    ]);
  });

  it('iommufd-h200-2: IDs are the N of /dev/vfio/devices/vfioN, and the cdev is the device node', async () => {
    const { sysfs } = await boundNode('iommufd-h200-2');
    const inventory = scanInventory(sysfs, GPUS, loadPciIds(sysfs));
    expect(inventory.model).toBe('iommufd');
    expect(inventory.devices.map((d) => [d.id, d.deviceNodes, d.numaNodes])).toEqual([
      ['0', ['/dev/vfio/devices/vfio0'], [0]],
      ['1', ['/dev/vfio/devices/vfio1'], [1]],
    ]);
  });

  it('workstation-mixed: a card whose functions share a group is one device with every function in it', async () => {
    const { sysfs } = simNode('workstation-mixed');
    await bindAll(sysfs, { devices: ['0000:01:00.0'] });
    const inventory = scanInventory(sysfs, GPUS, loadPciIds(sysfs));
    expect(inventory.devices).toHaveLength(1);
    expect(inventory.devices[0]).toMatchObject({
      id: '12',
      health: 'Healthy',
      members: ['0000:01:00.0', '0000:01:00.1', '0000:01:00.2', '0000:01:00.3'],
      deviceNodes: ['/dev/vfio/vfio', '/dev/vfio/12'],
    });
    // The H100 shares group 30 with a NIC on its host driver: not bound, so not advertised.
    expect(inventory.skipped.find((s) => s.address === '0000:42:00.0')?.reason).toBe('on nvidia, not a VFIO driver');
  });

  it('a group member back on a host driver makes the device Unhealthy, naming the member', async () => {
    const { sysfs } = simNode('workstation-mixed');
    await bindAll(sysfs, { devices: ['0000:01:00.0'] });
    await sysfs.write('sys/bus/pci/drivers/vfio-pci/unbind', '0000:01:00.1');
    await sysfs.write('sys/bus/pci/devices/0000:01:00.1/driver_override', '\n');
    await sysfs.write('sys/bus/pci/drivers/snd_hda_intel/bind', '0000:01:00.1');
    const [device] = scanInventory(sysfs, GPUS, loadPciIds(sysfs)).devices;
    expect(device).toMatchObject({ id: '12', health: 'Unhealthy' });
    expect(device!.reason).toMatch(/0000:01:00\.1 \(10de:10f8\) is on snd_hda_intel/);
  });

  it('grace-gh200-1: a GPU on the nvgrace_gpu_vfio_pci variant driver is advertised', async () => {
    const { sysfs } = await boundNode('grace-gh200-1');
    const [device] = scanInventory(sysfs, GPUS, loadPciIds(sysfs)).devices;
    expect(device).toMatchObject({
      id: '9',
      health: 'Healthy',
      functions: [{ driver: 'nvgrace_gpu_vfio_pci' }],
    });
  });

  it('per-model names with empty aliases come from hal’s naming contract (the CDI kinds kata-manager writes)', async () => {
    const { sysfs } = await boundNode('hgx-h100-8', { nvswitches: true });
    const pciIds = loadPciIds(sysfs);
    const aliases = { gpuAlias: '', nvswitchAlias: '' };
    const inventory = scanInventory(sysfs, { nvswitches: true, aliases }, pciIds);
    expect([...new Set(inventory.devices.map((d) => d.resourceName))]).toEqual([
      'nvidia.com/GH100_H100_NVSWITCH',
      'nvidia.com/GH100_H100_SXM5_80GB',
    ]);
    for (const device of inventory.devices) {
      const pciDeviceId = Number.parseInt(device.functions[0]!.pciId.slice(5), 16);
      const naming = resourceNamingFor({ deviceType: device.type, pciDeviceId, pciIds, aliases });
      expect([device.resourceName, device.cdiKind]).toEqual([naming.resourceName, naming.cdiKind]);
    }
  });

  it('a device that loses its node stays listed as Unhealthy and turns Healthy when the node returns', async () => {
    const { sysfs, root } = await boundNode('h100-pcie-1');
    const first = nextDeviceState(new Map(), scanInventory(sysfs, GPUS, undefined));
    localFs.removeSync(`${root}/dev/vfio/11`);
    const lost = nextDeviceState(first, scanInventory(sysfs, GPUS, undefined));
    expect(lost.get('nvidia.com/pgpu')?.get('11')).toMatchObject({
      health: 'Unhealthy',
      reason: 'device node /dev/vfio/11 is missing',
    });
    await sysfs.write('sys/bus/pci/drivers/vfio-pci/unbind', '0000:41:00.0');
    const gone = nextDeviceState(lost, scanInventory(sysfs, GPUS, undefined));
    expect(gone.get('nvidia.com/pgpu')?.get('11')?.reason).toBe(
      'no longer advertisable: 0000:41:00.0 bound to no driver',
    );
    await sysfs.write('sys/bus/pci/drivers/vfio-pci/bind', '0000:41:00.0');
    const back = nextDeviceState(gone, scanInventory(sysfs, GPUS, undefined));
    expect(back.get('nvidia.com/pgpu')?.get('11')?.health).toBe('Healthy');
  });
});
