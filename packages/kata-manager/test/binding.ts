// Binding helpers shared by the tests and the benchmark (no vitest here: the benchmark runs on tsx).
import { createLogger } from '@gpucc/daemon';
import { bindDevice, type PciAddress, parsePciAddress, type Sysfs, setDriverOverride, unbindDevice } from '@gpucc/hal';
import type { ApplyOptions } from '../../vfio-manager/src/apply.js';

/** vfio-manager engine options for a simulated node: its fake modprobe loads variant drivers. */
export function applyOptions(root: string): ApplyOptions {
  return {
    logger: silentLogger(),
    loadModules: true,
    modprobe: { path: `${root}/usr/sbin/modprobe` },
    unbindTimeoutMs: 5_000,
    deviceNodeTimeoutMs: 5_000,
  };
}

export function silentLogger() {
  return createLogger({ name: 'test', format: 'json', level: 'silent' });
}

/** Moves one function to vfio-pci with the hal's primitives (three writes, no waiting for nodes). */
export async function bindToVfio(sysfs: Sysfs, address: string): Promise<void> {
  const bdf: PciAddress = parsePciAddress(address);
  await setDriverOverride(sysfs, bdf, 'vfio-pci');
  await unbindDevice(sysfs, bdf);
  await bindDevice(sysfs, bdf, 'vfio-pci');
}
