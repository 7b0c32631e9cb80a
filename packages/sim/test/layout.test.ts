import { readFileSync, readlinkSync, realpathSync, rmSync } from 'node:fs';
import path from 'node:path';
import { cardFunctions, discoverPci, HostRoot, type PciAddress } from '@gpucc/hal';
import { simNode, tempDir } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import { createNode } from '../src/node/create.js';
import { PROFILES } from '../src/profiles/profiles.js';

describe('simulated node layout', () => {
  it('writes every attribute in the kernel format, with one trailing newline', () => {
    const { root } = simNode('h100-pcie-1');
    const dev = path.join(root, 'sys/bus/pci/devices/0000:41:00.0');
    const read = (a: string) => readFileSync(path.join(dev, a), 'utf8');
    expect(read('vendor')).toBe('0x10de\n');
    expect(read('device')).toBe('0x2331\n');
    expect(read('class')).toBe('0x030200\n');
    expect(read('subsystem_device')).toBe('0x1626\n');
    expect(read('revision')).toBe('0xa1\n');
    expect(read('driver_override')).toBe('(null)\n');
    expect(read('modalias')).toBe('pci:v000010DEd00002331sv000010DEsd00001626bc03sc02i00\n');
    expect(read('resource').split('\n')).toHaveLength(14); // 13 lines and the final newline
    expect(read('reset_method')).toBe('flr bus\n');
  });

  it('uses relative symlinks exactly as sysfs does (bus → devices, driver, iommu_group, drivers/<drv>/<bdf>)', () => {
    const { root } = simNode('hgx-h100-8');
    const bus = path.join(root, 'sys/bus/pci/devices/0000:13:00.0');
    expect(readlinkSync(bus)).toBe('../../../devices/pci0000:10/0000:10:01.1/0000:11:00.0/0000:12:00.0/0000:13:00.0');
    expect(readlinkSync(path.join(bus, 'driver'))).toBe('../../../../../../bus/pci/drivers/nvidia');
    expect(readlinkSync(path.join(bus, 'iommu_group'))).toBe('../../../../../../kernel/iommu_groups/23');
    expect(realpathSync(path.join(root, 'sys/bus/pci/drivers/nvidia/0000:13:00.0'))).toBe(realpathSync(bus));
    expect(realpathSync(path.join(root, 'sys/kernel/iommu_groups/23/devices/0000:13:00.0'))).toBe(realpathSync(bus));
    expect(readlinkSync(path.join(root, 'sys/bus/pci/drivers/vfio-pci/module'))).toBe('../../../../module/vfio_pci');
  });

  it('hgx-h100-8: 8 H100 SXM and 4 NVSwitches, each alone in its IOMMU group, on their host drivers', () => {
    const { sysfs } = simNode('hgx-h100-8');
    const topology = discoverPci(sysfs);
    const gpus = topology.devices.filter((d) => d.kind === 'gpu');
    const switches = topology.devices.filter((d) => d.kind === 'nvswitch');
    expect(gpus.map((g) => g.device)).toEqual(Array(8).fill(0x2330));
    expect(switches.map((s) => s.device)).toEqual(Array(4).fill(0x22a3));
    for (const d of [...gpus, ...switches]) expect(topology.groups.get(d.iommuGroup!)).toEqual([d.address]);
    expect(new Set(gpus.map((g) => g.driver))).toEqual(new Set(['nvidia']));
    expect(new Set(switches.map((g) => g.driver))).toEqual(new Set(['nvidia-nvswitch']));
    expect(topology.problems).toEqual([]);
  });

  it('workstation-mixed: a 4-function card in one group with consumer links, and a GPU sharing a group with a NIC and a bridge', () => {
    const { sysfs } = simNode('workstation-mixed');
    const t = discoverPci(sysfs);
    const vga = t.byAddress.get('0000:01:00.0' as never)!;
    expect(vga.class).toBe(0x030000);
    expect(vga.consumers).toEqual(['0000:01:00.1', '0000:01:00.2', '0000:01:00.3']);
    expect(t.groups.get(12)).toEqual(['0000:01:00.0', '0000:01:00.1', '0000:01:00.2', '0000:01:00.3']);
    expect(t.devices.filter((d) => d.iommuGroup === 12).map((d) => d.driver)).toEqual([
      'nvidia',
      'snd_hda_intel',
      'xhci_hcd',
      'nvidia-gpu',
    ]);
    const shared = t.groups.get(30)!.map((a) => t.byAddress.get(a)!);
    expect(shared.map((d) => [d.address, d.kind, d.driver])).toEqual([
      ['0000:41:00.0', 'bridge', 'pcieport'],
      ['0000:41:01.0', 'bridge', 'pcieport'],
      ['0000:42:00.0', 'gpu', 'nvidia'],
      ['0000:43:00.0', 'other', 'mlx5_core'],
    ]);
    expect(shared[3]!.vendor).toBe(0x15b3);
    expect(cardFunctions(t, '0000:42:00.0' as never)).toEqual(['0000:42:00.0']); // the NIC is not part of the card
  });

  it('iommufd-h200-2 has /dev/iommu; no-iommu has an empty iommu_groups and no group links', () => {
    const fd = simNode('iommufd-h200-2');
    expect(fd.sysfs.exists('dev/iommu')).toBe(true);
    expect(discoverPci(fd.sysfs).devices.filter((d) => d.device === 0x2335)).toHaveLength(2);
    const off = simNode('no-iommu');
    const t = discoverPci(off.sysfs);
    expect(t.iommuEnabled).toBe(false);
    expect(off.sysfs.readdir('sys/kernel/iommu_groups')).toEqual([]);
    expect(t.devices.every((d) => d.iommuGroup === undefined)).toBe(true);
  });

  it('hgx-b200-8 has 8 B200 (subsystem 0x1999) and no NVSwitch functions', () => {
    const t = discoverPci(simNode('hgx-b200-8').sysfs);
    expect(t.devices.filter((d) => d.kind === 'gpu').map((d) => [d.device, d.subsystemDevice])).toEqual(
      Array(8).fill([0x2901, 0x1999]),
    );
    expect(t.devices.filter((d) => d.kind === 'nvswitch')).toEqual([]);
  });

  it('the scale profile makes cards × functions PCI functions', () => {
    const t = discoverPci(simNode('scale', { gpus: 32, functionsPerCard: 4 }).sysfs);
    expect(t.devices).toHaveLength(128);
    expect(t.devices.filter((d) => d.kind === 'gpu')).toHaveLength(32);
  });

  it('every function of every profile has both subsystem IDs, as pci-sysfs.c makes them; bridges read 0x0000', () => {
    for (const profile of PROFILES) {
      const { root, sysfs } = simNode(profile.name, profile.sized ? { gpus: 2 } : {});
      const devices = discoverPci(sysfs).devices;
      for (const d of devices) {
        const dir = path.join(root, d.sysfsPath);
        for (const attr of ['subsystem_vendor', 'subsystem_device']) {
          expect(readFileSync(path.join(dir, attr), 'utf8'), `${profile.name} ${d.address} ${attr}`).toMatch(
            /^0x[0-9a-f]{4}\n$/,
          );
        }
        // the uevent (which the hal reads first) carries the same pair
        const uevent = readFileSync(path.join(dir, 'uevent'), 'utf8');
        const hex4 = (v: number | undefined) => (v ?? -1).toString(16).toUpperCase().padStart(4, '0');
        expect(uevent, `${profile.name} ${d.address}`).toContain(
          `PCI_SUBSYS_ID=${hex4(d.subsystemVendor)}:${hex4(d.subsystemDevice)}`,
        );
        if (d.kind === 'bridge') expect([d.subsystemVendor, d.subsystemDevice]).toEqual([0, 0]);
      }
      const gpus = devices.filter((d) => d.kind === 'gpu');
      expect(gpus.length).toBeGreaterThan(0);
      for (const gpu of gpus) expect(gpu.subsystemVendor).toBe(0x10de);
    }
  });

  it('the hal reads the subsystem IDs from the attribute files where a tree has no uevent', () => {
    const { root } = simNode('hgx-h100-8');
    for (const address of ['0000:13:00.0', '0000:12:00.0', '0000:07:00.0']) {
      rmSync(path.join(root, 'sys/bus/pci/devices', address, 'uevent'));
    }
    const topology = discoverPci(new HostRoot(root));
    const ids = (a: string) => {
      const d = topology.byAddress.get(a as PciAddress);
      return [d?.subsystemVendor, d?.subsystemDevice];
    };
    expect(ids('0000:13:00.0')).toEqual([0x10de, 0x16c1]); // H100 SXM5
    expect(ids('0000:07:00.0')).toEqual([0x10de, 0x1796]); // NVSwitch
    expect(ids('0000:12:00.0')).toEqual([0, 0]); // a switch port: no Subsystem ID
    expect(topology.warnings).toEqual([]);
  });

  it('every profile is readable by a plain HostRoot without the simulator (any host-like tree works)', () => {
    for (const profile of PROFILES.filter((p) => p.name !== 'scale')) {
      const root = path.join(tempDir(), 'n');
      createNode(root, profile.name);
      const t = discoverPci(new HostRoot(root));
      expect(t.problems, profile.name).toEqual([]);
      expect(
        t.devices.some((d) => d.kind === 'gpu'),
        profile.name,
      ).toBe(true);
    }
  });

  it('refuses to create into a non-empty directory and names unknown profiles', () => {
    const { root } = simNode('h100-pcie-1');
    expect(() => createNode(root, 'h100-pcie-1')).toThrow(
      expect.objectContaining({ code: 'ERR_GPUCC_SIM_TARGET_NOT_EMPTY' }),
    );
    expect(() => createNode(path.join(tempDir(), 'x'), 'h100')).toThrow(
      expect.objectContaining({ code: 'ERR_GPUCC_SIM_UNKNOWN_PROFILE' }),
    );
  });
});
