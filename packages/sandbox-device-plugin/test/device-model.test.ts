// --vfio-device-model on the three kernels a node can have (iommufd with per-device cdevs, iommufd
// without CONFIG_VFIO_DEVICE_CDEV, neither): the IDs the kubelet is told, the device specs Allocate
// hands the container, and the coded problem for a device iommufd mode cannot serve.
import { rmSync } from 'node:fs';
import path from 'node:path';
import type { VfioDeviceModelSetting } from '@gpucc/hal';
import { CDEV_NODES, DEVICE_MODEL_CASES, DEVICE_MODEL_KERNELS, GROUP_NODES } from '@gpucc/testbed/fixtures';
import { boundNode, captureCli } from '@gpucc/testbed/vitest';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { allocate } from '../src/allocate.js';
import { main } from '../src/cli.js';
import { scanInventory } from '../src/inventory.js';

/** Every advertised ID with the container paths Allocate answers for it alone. */
function served(sysfs: Parameters<typeof scanInventory>[0], deviceModel: VfioDeviceModelSetting) {
  const inventory = scanInventory(sysfs, { nvswitches: false, aliases: {}, deviceModel }, undefined);
  const devices = new Map(inventory.devices.map((d) => [d.id, d]));
  const paths = Object.fromEntries(
    inventory.devices.map((d) => {
      const response = allocate(
        { container_requests: [{ devices_ids: [d.id] }] },
        { resourceName: d.resourceName, devices, cdiDevices: false },
      );
      return [d.id, response.container_responses[0]!.devices.map((s) => s.container_path)];
    }),
  );
  return { paths, health: inventory.devices.map((d) => d.health), problems: inventory.problems };
}

describe('sandbox-device-plugin --vfio-device-model', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it.each(DEVICE_MODEL_CASES)('%s, %s: Allocate hands out %j, every device healthy', async (kernel, mode, expected) => {
    const { sysfs } = await boundNode('iommufd-h200-2', DEVICE_MODEL_KERNELS[kernel]);
    const { paths, health, problems } = served(sysfs, mode);
    expect(paths).toEqual(expected);
    expect(health).toEqual(['Healthy', 'Healthy']);
    expect(problems).toEqual([]);
  });

  it.each([
    ['iommufd without VFIO_DEVICE_CDEV', /CONFIG_VFIO_DEVICE_CDEV/],
    ['no iommufd', /CONFIG_IOMMUFD/],
  ] as const)('%s, iommufd: nothing is advertised, each GPU a coded problem with a hint', async (kernel, hint) => {
    const { sysfs } = await boundNode('iommufd-h200-2', DEVICE_MODEL_KERNELS[kernel]);
    const { paths, problems } = served(sysfs, 'iommufd');
    expect(paths).toEqual({});
    expect(problems.map((p) => [p.code, p.details.address])).toEqual([
      ['ERR_GPUCC_VFIO_CDEV_UNAVAILABLE', '0000:23:00.0'],
      ['ERR_GPUCC_VFIO_CDEV_UNAVAILABLE', '0000:43:00.0'],
    ]);
    expect(problems[0]!.hint).toMatch(hint);
  });

  it('auto decides per device (one GPU without its cdev gets its group); iommufd still serves the other', async () => {
    const { root, sysfs } = await boundNode('iommufd-h200-2', DEVICE_MODEL_KERNELS['iommufd with cdevs']);
    dropCdev(root, '0000:43:00.0', 1);
    expect(served(sysfs, 'auto').paths).toEqual({ '0': CDEV_NODES['0'], '47': GROUP_NODES['47'] });
    const strict = served(sysfs, 'iommufd');
    expect(strict.paths).toEqual({ '0': CDEV_NODES['0'] });
    expect(strict.problems.map((p) => p.code)).toEqual(['ERR_GPUCC_VFIO_CDEV_UNAVAILABLE']);
  });

  it('--vfio-device-model and GPUCC_VFIO_DEVICE_MODEL: legacy lists group IDs; a bad value is a usage error naming the allowed ones', async () => {
    const { root } = await boundNode('iommufd-h200-2', DEVICE_MODEL_KERNELS['iommufd with cdevs']);
    const list = (args: string[]) =>
      captureCli(main, 'sandbox-device-plugin', ['list', '--host-root', root, '--output', 'json', ...args]);
    const ids = (out: string) =>
      (JSON.parse(out) as { resources: { devices: { id: string }[] }[] }).resources.flatMap((r) =>
        r.devices.map((d) => d.id),
      );
    expect(ids((await list([])).out)).toEqual(['0', '1']);
    expect(ids((await list(['--vfio-device-model', 'legacy'])).out)).toEqual(['43', '47']);
    vi.stubEnv('GPUCC_VFIO_DEVICE_MODEL', 'legacy');
    expect(ids((await list([])).out)).toEqual(['43', '47']);
    vi.stubEnv('GPUCC_VFIO_DEVICE_MODEL', 'cdev');
    const bad = await list([]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(
      /ERR_GPUCC_INVALID_CONFIG.*--vfio-device-model \(GPUCC_VFIO_DEVICE_MODEL\).*auto, legacy, iommufd/,
    );
  });
});

/** Leaves the device's VFIO registration without its char device, as a kernel without VFIO_DEVICE_CDEV shows it. */
function dropCdev(root: string, address: string, n: number): void {
  const registration = path.join(root, 'sys/bus/pci/devices', address, 'vfio-dev', `vfio${n}`);
  rmSync(path.join(registration, 'dev'));
  rmSync(path.join(root, `sys/dev/char/511:${n}`));
  rmSync(path.join(root, `dev/vfio/devices/vfio${n}`));
}
