// The device selection as pure data: hand-made observations for the shapes the simulator cannot
// make (no-IOMMU hosts, two GPUs in one group, a cdev that is late, a name that cannot be made).
import type { PciAddress, PciDevice, PciTopology, VfioModel } from '@gpucc/hal';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { selectDevices } from '../src/devices.js';
import type { DeviceObservation } from '../src/observe.js';
import { buildSpecs, renderSpec } from '../src/spec.js';
import { parseSpecText } from '../src/validate.js';

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

function observation(model: VfioModel, devices: PciDevice[], present?: string[]): DeviceObservation {
  const groups = new Map<number, PciAddress[]>();
  for (const d of devices)
    if (d.iommuGroup !== undefined) groups.set(d.iommuGroup, [...(groups.get(d.iommuGroup) ?? []), d.address]);
  const topology: PciTopology = {
    devices,
    byAddress: new Map(devices.map((d) => [d.address, d])),
    addresses: devices.map((d) => d.address),
    groups,
    iommuEnabled: model !== 'noiommu',
    problems: [],
    warnings: [],
  };
  const all = devices.flatMap((d) => [
    'dev/vfio/vfio',
    `dev/vfio/${d.iommuGroup}`,
    `dev/vfio/noiommu-${d.iommuGroup}`,
    ...(d.vfioCdev ? [`dev/vfio/devices/vfio${d.vfioCdev.index}`] : []),
  ]);
  return {
    topology,
    model: {
      model,
      iommuEnabled: model !== 'noiommu',
      iommufd: model === 'iommufd',
      noiommuParameter: model === 'noiommu',
    },
    presentNodes: new Set(present ?? all),
    pciIds: undefined,
  };
}

const cdev = (index: number) => ({ name: `vfio${index}`, index, major: 511, minor: index });

describe('selectDevices', () => {
  it('legacy: two GPUs sharing a group are one device named by the group, never two devices with one name', () => {
    const obs = observation('legacy', [
      fn('0000:41:00.0', { iommuGroup: 8 }),
      fn('0000:42:00.0', { iommuGroup: 8 }),
      fn('0000:81:00.0', { iommuGroup: 10 }),
    ]);
    const { devices, skipped } = selectDevices(obs, {});
    expect(skipped).toEqual([]);
    expect(devices.map((d) => [d.kind, d.name, d.functions, d.nodes])).toEqual([
      ['nvidia.com/pgpu', '8', ['0000:41:00.0', '0000:42:00.0'], ['/dev/vfio/vfio', '/dev/vfio/8']],
      ['nvidia.com/pgpu', '10', ['0000:81:00.0'], ['/dev/vfio/vfio', '/dev/vfio/10']],
    ]);
  });

  it('iommufd: one device per group, named by the N of its first GPU, with the cdev of every function', () => {
    const obs = observation('iommufd', [
      fn('0000:41:00.0', { iommuGroup: 8, vfioCdev: cdev(3) }),
      fn('0000:41:00.1', { iommuGroup: 8, vfioCdev: cdev(1), kind: 'other', class: 0x040300, device: 0x10f8 }),
      fn('0000:42:00.0', { iommuGroup: 8, vfioCdev: cdev(2) }),
    ]);
    const { devices } = selectDevices(obs, {});
    expect(devices).toHaveLength(1);
    expect(devices[0]).toMatchObject({
      name: '3',
      primary: '0000:41:00.0',
      nodes: ['/dev/vfio/devices/vfio3', '/dev/vfio/devices/vfio1', '/dev/vfio/devices/vfio2'],
    });
  });

  it('a VFIO-bound GPU behind an Intel VMD controller (domain 10000) gets no CDI device, as the plugin never advertises it', () => {
    const obs = observation('legacy', [
      fn('0000:41:00.0', { iommuGroup: 8 }),
      fn('10000:01:00.0', {
        iommuGroup: 9,
        sysfsPath: 'sys/devices/pci0000:d7/0000:d7:05.5/pci10000:00/10000:00:02.0/10000:01:00.0',
      }),
    ]);
    const { devices, skipped } = selectDevices(obs, {});
    expect(devices.map((d) => d.primary)).toEqual(['0000:41:00.0']);
    expect(skipped).toEqual([
      { address: '10000:01:00.0', reason: expect.stringMatching(/behind an Intel VMD controller/), waiting: false },
    ]);
  });

  it('no-IOMMU: /dev/vfio/vfio and /dev/vfio/noiommu-<group>', () => {
    const { devices } = selectDevices(observation('noiommu', [fn('0000:41:00.0', { iommuGroup: 0 })]), {});
    expect(devices.map((d) => [d.name, d.nodes])).toEqual([['0', ['/dev/vfio/vfio', '/dev/vfio/noiommu-0']]]);
  });

  it('counts every VFIO variant driver, and nothing else', () => {
    const obs = observation('legacy', [
      fn('0000:01:00.0', { iommuGroup: 1, driver: 'nvgrace_gpu_vfio_pci' }),
      fn('0000:02:00.0', { iommuGroup: 2, driver: 'nvidia' }),
      fn('0000:03:00.0', { iommuGroup: 3, driver: undefined }),
      fn('0000:04:00.0', { iommuGroup: 4, driver: 'vfio-pci-extra' }),
      fn('0000:05:00.0', { iommuGroup: 5, kind: 'nvswitch', class: 0x068000, device: 0x22a3 }),
      fn('0000:06:00.0', { iommuGroup: 6, kind: 'other', vendor: 0x15b3, class: 0x020000 }),
    ]);
    expect(selectDevices(obs, {}).devices.map((d) => `${d.kind}=${d.name}`)).toEqual([
      'nvidia.com/pgpu=1',
      'nvidia.com/nvswitch=5',
    ]);
  });

  it('waits for a missing node instead of publishing a device whose node a runtime would fail to stat', () => {
    const obs = observation('legacy', [fn('0000:41:00.0', { iommuGroup: 8 })], ['dev/vfio/vfio']);
    expect(selectDevices(obs, {})).toEqual({
      devices: [],
      skipped: [{ address: '0000:41:00.0', reason: 'waiting for /dev/vfio/8', waiting: true }],
    });
    const late = observation('iommufd', [
      fn('0000:41:00.0', { iommuGroup: 8, vfioCdev: cdev(0) }),
      fn('0000:41:00.1', { iommuGroup: 8, kind: 'other', class: 0x040300 }),
    ]);
    // iommufd required: the companion's cdev is waited for; auto gives the group its group node meanwhile.
    expect(selectDevices(late, {}, 'iommufd').skipped).toEqual([
      { address: '0000:41:00.0', reason: 'waiting for the vfio cdev of 0000:41:00.1', waiting: true },
    ]);
    expect(selectDevices(late, {}).devices.map((d) => [d.name, d.nodes])).toEqual([
      ['8', ['/dev/vfio/vfio', '/dev/vfio/8']],
    ]);
  });

  it('reports a device that cannot be named, with its error, and still publishes the others', () => {
    const obs = observation('legacy', [
      fn('0000:41:00.0', { iommuGroup: 8 }),
      fn('0000:42:00.0', { iommuGroup: undefined }),
    ]);
    const { devices, skipped } = selectDevices(obs, {});
    expect(devices.map((d) => d.name)).toEqual(['8']);
    expect(skipped).toMatchObject([
      { address: '0000:42:00.0', waiting: false, error: { code: 'ERR_GPUCC_INVALID_DEVICE_NUMBER' } },
    ]);
  });

  it('per-model names without pci.ids fall back to NVIDIA_<device id>', () => {
    const obs = observation('legacy', [fn('0000:41:00.0', { iommuGroup: 8, device: 0x2331 })]);
    expect(selectDevices(obs, { gpuAlias: '' }).devices[0]!.kind).toBe('nvidia.com/NVIDIA_2331');
  });

  it('names a group member still on a host driver, which keeps a VM from opening the group', () => {
    const obs = observation('legacy', [
      fn('0000:41:00.0', { iommuGroup: 8 }),
      fn('0000:41:00.1', { iommuGroup: 8, kind: 'other', class: 0x040300, driver: 'snd_hda_intel' }),
    ]);
    expect(selectDevices(obs, {}).devices[0]!.blockingMembers).toEqual([
      { address: '0000:41:00.1', driver: 'snd_hda_intel' },
    ]);
  });
});

describe('buildSpecs and renderSpec', () => {
  const obs = observation(
    'legacy',
    [100, 8, 10, 9].map((g, i) => fn(`0000:0${i + 1}:00.0`, { iommuGroup: g })),
  );

  it('orders devices numerically and gives the same bytes whatever the discovery order', () => {
    const { devices } = selectDevices(obs, {});
    const [spec] = buildSpecs(devices);
    expect(spec!.spec.devices.map((d) => d.name)).toEqual(['8', '9', '10', '100']);
    expect(renderSpec(buildSpecs([...devices].reverse())[0]!.spec, 'yaml')).toBe(renderSpec(spec!.spec, 'yaml'));
    expect(spec!.fileName).toBe('nvidia.com-pgpu_gpucc.yaml');
  });

  it('quotes cdiVersion and every name in YAML; JSON carries no header', () => {
    const [spec] = buildSpecs(selectDevices(obs, {}).devices);
    const yaml = renderSpec(spec!.spec, 'yaml');
    expect(yaml).toMatch(
      /^# Written by gpucc kata-manager.*\ncdiVersion: "0.5.0"\nkind: nvidia.com\/pgpu\ndevices:\n {2}- name: "8"\n/,
    );
    expect(yaml.match(/name: "\d+"/g)).toHaveLength(4);
    const json = renderSpec(spec!.spec, 'json');
    expect(JSON.parse(json)).toEqual(spec!.spec);
    expect(json.startsWith('{')).toBe(true);
  });
});

describe('the YAML renderer', () => {
  const name = fc.stringMatching(/^[A-Za-z0-9]([A-Za-z0-9_.:-]{0,10}[A-Za-z0-9])?$/);
  const path = fc.oneof(
    fc.stringMatching(/^\/dev\/[A-Za-z0-9_./-]{1,20}$/),
    fc.string({ minLength: 1, maxLength: 20 }), // anything: quoted where needed
  );
  const spec = fc.record({
    cdiVersion: fc.constantFrom('0.5.0', '1.1.0', 'v0.5.0'),
    kind: fc.constantFrom('nvidia.com/pgpu', 'nvidia.com/yes', 'nvidia.com/GH100_H100_PCIE', 'a.b-c/d_e'),
    devices: fc.array(
      fc.record({
        name,
        containerEdits: fc.record({ deviceNodes: fc.array(fc.record({ path }), { minLength: 1, maxLength: 3 }) }),
      }),
      { minLength: 1, maxLength: 5 },
    ),
  });

  it('reads back, by a full YAML 1.1 parser, exactly the spec it was given', () => {
    fc.assert(
      fc.property(spec, (s) => {
        expect(parseSpecText(renderSpec(s, 'yaml'), 'yaml')).toEqual(s);
      }),
      { numRuns: 300 },
    );
  });

  it('quotes a path that YAML would read as something else', () => {
    const s = {
      cdiVersion: '0.5.0',
      kind: 'nvidia.com/pgpu',
      devices: [{ name: '1', containerEdits: { deviceNodes: [{ path: 'yes' }, { path: '/a: b' }] } }],
    };
    expect(renderSpec(s, 'yaml')).toContain('- path: "yes"\n        - path: "/a: b"\n');
  });
});
