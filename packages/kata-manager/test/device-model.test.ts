// --vfio-device-model on the three kernels a node can have: iommufd with per-device cdevs, iommufd
// without CONFIG_VFIO_DEVICE_CDEV (/dev/iommu but no cdevs), and neither. What a user sees is the
// CDI spec: its device names and deviceNodes, and the coded reason for a device it leaves out.
import { rmSync } from 'node:fs';
import path from 'node:path';
import type { VfioDeviceModelSetting } from '@gpucc/hal';
import { CDEV_NODES, DEVICE_MODEL_CASES, DEVICE_MODEL_KERNELS, GROUP_NODES } from '@gpucc/testbed/fixtures';
import { boundNode, captureCli } from '@gpucc/testbed/vitest';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../src/cli.js';
import { generate } from '../src/commands.js';

/** The published devices as `name: nodes`, from the rendered spec(s). */
function published(sysfs: Parameters<typeof generate>[0], deviceModel: VfioDeviceModelSetting) {
  const generated = generate(sysfs, { aliases: {}, deviceModel });
  const devices = generated.specs.flatMap((s) =>
    s.spec.devices.map((d) => [d.name, (d.containerEdits.deviceNodes ?? []).map((n) => n.path)]),
  );
  const refused = generated.selection.skipped.map((s) => ({
    address: s.address,
    code: s.error?.code,
    waiting: s.waiting,
  }));
  return { devices: Object.fromEntries(devices), refused, skipped: generated.selection.skipped };
}

describe('kata-manager --vfio-device-model', () => {
  it.each(DEVICE_MODEL_CASES)('%s, %s: the spec lists %j', async (kernel, mode, expected) => {
    const { sysfs } = await boundNode('iommufd-h200-2', DEVICE_MODEL_KERNELS[kernel]);
    const { devices, refused } = published(sysfs, mode);
    expect(devices).toEqual(expected);
    expect(refused).toEqual([]);
  });

  it.each([
    ['iommufd without VFIO_DEVICE_CDEV', /CONFIG_VFIO_DEVICE_CDEV/],
    ['no iommufd', /CONFIG_IOMMUFD/],
  ] as const)(
    '%s, iommufd: no device is published, each refused with a coded error and a hint',
    async (kernel, hint) => {
      const { sysfs } = await boundNode('iommufd-h200-2', DEVICE_MODEL_KERNELS[kernel]);
      const { devices, skipped } = published(sysfs, 'iommufd');
      expect(devices).toEqual({});
      expect(skipped.map((s) => [s.address, s.error?.code, s.waiting])).toEqual([
        ['0000:23:00.0', 'ERR_GPUCC_VFIO_CDEV_UNAVAILABLE', false],
        ['0000:43:00.0', 'ERR_GPUCC_VFIO_CDEV_UNAVAILABLE', false],
      ]);
      expect(skipped[0]!.error!.hint).toMatch(hint);
    },
  );

  it('auto decides per device: one without its cdev gets its group, the other keeps its cdev; iommufd serves the other alone', async () => {
    const { root, sysfs } = await boundNode('iommufd-h200-2', DEVICE_MODEL_KERNELS['iommufd with cdevs']);
    dropCdev(root, '0000:43:00.0', 1); // as a kernel without VFIO_DEVICE_CDEV shows a bound device
    expect(published(sysfs, 'auto').devices).toEqual({ '0': CDEV_NODES['0'], '47': GROUP_NODES['47'] });

    const strict = published(sysfs, 'iommufd');
    expect(strict.devices).toEqual({ '0': CDEV_NODES['0'] });
    expect(strict.refused).toEqual([
      { address: '0000:43:00.0', code: 'ERR_GPUCC_VFIO_CDEV_UNAVAILABLE', waiting: false },
    ]);
  });

  describe('the CLI', () => {
    afterEach(() => {
      vi.unstubAllEnvs();
    });
    const kata = (args: string[]) => captureCli(main, 'kata-manager', args);

    it('write --vfio-device-model iommufd on a kernel without cdevs: nothing written, exit 1, the code in the report', async () => {
      const { root } = await boundNode('iommufd-h200-2', DEVICE_MODEL_KERNELS['iommufd without VFIO_DEVICE_CDEV']);
      const strict = await kata(['write', '--host-root', root, '--vfio-device-model', 'iommufd', '--report', 'json']);
      expect(strict.code).toBe(1);
      const report = JSON.parse(strict.out) as { devices: unknown[]; errors: { code: string }[] };
      expect(report.devices).toEqual([]);
      expect(report.errors.map((e) => e.code)).toEqual([
        'ERR_GPUCC_VFIO_CDEV_UNAVAILABLE',
        'ERR_GPUCC_VFIO_CDEV_UNAVAILABLE',
      ]);
      vi.stubEnv('GPUCC_VFIO_DEVICE_MODEL', 'auto');
      const auto = await kata(['write', '--host-root', root, '--report', 'json']);
      expect(auto.code).toBe(0);
      expect((JSON.parse(auto.out) as { devices: { name: string }[] }).devices.map((d) => d.name)).toEqual([
        '43',
        '47',
      ]);
    });

    it('a bad value is a usage error (exit 2) that names the flag, its variable and the allowed values', async () => {
      const { root } = await boundNode('iommufd-h200-2', DEVICE_MODEL_KERNELS['iommufd with cdevs']);
      const flag = await kata(['generate', '--host-root', root, '--vfio-device-model', 'cdev']);
      expect(flag.code).toBe(2);
      expect(flag.err).toMatch(
        /ERR_GPUCC_INVALID_CONFIG.*--vfio-device-model \(GPUCC_VFIO_DEVICE_MODEL\).*auto, legacy, iommufd/,
      );
      vi.stubEnv('GPUCC_VFIO_DEVICE_MODEL', 'group');
      expect((await kata(['generate', '--host-root', root])).code).toBe(2);
    });
  });
});

/** Leaves the device's VFIO registration without its char device: no `dev`, no /sys/dev/char link, no /dev node. */
function dropCdev(root: string, address: string, n: number): void {
  const registration = path.join(root, 'sys/bus/pci/devices', address, 'vfio-dev', `vfio${n}`);
  rmSync(path.join(registration, 'dev'));
  rmSync(path.join(root, `sys/dev/char/511:${n}`));
  rmSync(path.join(root, `dev/vfio/devices/vfio${n}`));
}
