import { discoverPci } from '@gpucc/hal';
import { injectFault } from '@gpucc/sim';
import { silentLogger } from '@gpucc/testbed/fixtures';
import { simNode } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import type { ApplyOptions } from '../src/apply.js';
import { READY_MARKER, reconcileOnce } from '../src/reconcile.js';

const options: ApplyOptions = {
  logger: silentLogger(),
  loadModules: false,
  modprobe: {},
  unbindTimeoutMs: 2_000,
  deviceNodeTimeoutMs: 2_000,
};
const gpuDrivers = (sysfs: Parameters<typeof discoverPci>[0]) =>
  discoverPci(sysfs)
    .devices.filter((d) => d.kind === 'gpu')
    .map((d) => d.driver);

describe('vfio-manager reconcile (run mode)', () => {
  it('toward vfio: converges, writes the readiness marker; toward none: restores the drivers and removes it', async () => {
    const { sysfs } = simNode('hgx-h100-8');
    const desired = { nvswitches: false, allowForeignGroupMembers: false };
    const up = await reconcileOnce(sysfs, { desired: 'vfio', ...desired }, options);
    expect(up.ok).toBe(true);
    expect(sysfs.exists(READY_MARKER)).toBe(true);
    expect(gpuDrivers(sysfs)).toEqual(Array(8).fill('vfio-pci'));

    const down = await reconcileOnce(sysfs, { desired: 'none', ...desired }, options);
    expect(down.ok).toBe(true);
    expect(sysfs.exists(READY_MARKER)).toBe(false);
    expect(gpuDrivers(sysfs)).toEqual(Array(8).fill('nvidia'));
  });

  it('is not ok, with the failed devices named, and removes a stale marker when a device cannot be bound', async () => {
    const { sysfs, root } = simNode('hgx-h100-8');
    const desired = { desired: 'vfio' as const, nvswitches: false, allowForeignGroupMembers: false };
    await reconcileOnce(sysfs, desired, options);
    expect(sysfs.exists(READY_MARKER)).toBe(true);
    // drift: one GPU falls back to nvidia and its bind now fails
    const { openSimulatedHost } = await import('@gpucc/sim');
    const sim = openSimulatedHost(root);
    await sim.write('sys/bus/pci/devices/0000:23:00.0/driver_override', '\n');
    await sim.write('sys/bus/pci/drivers/vfio-pci/unbind', '0000:23:00.0');
    await sim.write('sys/bus/pci/drivers_probe', '0000:23:00.0');
    await injectFault(root, { kind: 'bind-error', device: '0000:23:00.0', errno: 'EIO' });
    const outcome = await reconcileOnce(sysfs, desired, options);
    expect(outcome.ok).toBe(false);
    expect(outcome.reason).toMatch(/0000:23:00\.0 failed/);
    expect(sysfs.exists(READY_MARKER)).toBe(false);
  });
});
