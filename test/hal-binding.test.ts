import { renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import {
  bindDevice,
  clearDriverOverride,
  currentDriver,
  currentOverride,
  detectHostTee,
  GpuccError,
  parsePciAddress,
  probeDevice,
  registeredDriverName,
  resetDevice,
  setDriverOverride,
  takeNvidiaUnbindLock,
  unbindDevice,
  waitForPath,
} from '@gpucc/hal';
import { injectFault } from '@gpucc/sim';
import { simNode } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';

/** The vGPU-host NVIDIA driver: the only build with an unbind lock (docs/facts/real-hosts.md#the-nvidia-unbind-lock). */
const VGPU_HOST = { nvidiaDriver: 'vgpu-host' } as const;

const GPU = parsePciAddress('0000:13:00.0');

async function rejection(promise: Promise<unknown>): Promise<GpuccError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(GpuccError);
  return error as GpuccError;
}

describe('hal binding primitives on a simulated node', () => {
  it('set override, unbind, bind: three writes move the GPU to vfio-pci', async () => {
    const { sysfs } = simNode('hgx-h100-8');
    const s = sysfs.withRecorder();
    await setDriverOverride(s, GPU, 'vfio-pci');
    expect(await unbindDevice(s, GPU)).toBe('nvidia');
    await bindDevice(s, GPU, 'vfio-pci');
    expect(currentDriver(s, GPU)).toBe('vfio-pci');
    expect(currentOverride(s, GPU)).toBe('vfio-pci');
    expect(s.recorder.writes).toBe(3);
    expect(s.recorder.snapshot().writesByAttribute).toEqual({ driver_override: 1, unbind: 1, bind: 1 });
  });

  it('clearing the override writes "\\n" (never an empty buffer) and leaves it unset', async () => {
    const { sysfs: s } = simNode('hgx-h100-8');
    await setDriverOverride(s, GPU, 'vfio-pci');
    await clearDriverOverride(s, GPU);
    expect(currentOverride(s, GPU)).toBeUndefined();
    expect(s.recorder.writeLog.at(-1)).toMatchObject({ value: '\n', result: 'ok' });
  });

  it('unbind of an unbound device is a no-op without writes', async () => {
    const { sysfs } = simNode('hgx-h100-8');
    await unbindDevice(sysfs, GPU);
    const s = sysfs.withRecorder();
    expect(await unbindDevice(s, GPU)).toBeUndefined();
    expect(s.recorder.writes).toBe(0);
  });

  it('bind without the override fails with a hint, and EBUSY on the target driver counts as done', async () => {
    const { sysfs: s } = simNode('hgx-h100-8');
    await unbindDevice(s, GPU);
    const error = await rejection(bindDevice(s, GPU, 'vfio-pci'));
    expect(error.code).toBe('ERR_GPUCC_BIND_FAILED');
    expect(error.details.errno).toBe('ENODEV');
    expect(error.hint).toMatch(/driver_override/);
    await setDriverOverride(s, GPU, 'vfio-pci');
    await bindDevice(s, GPU, 'vfio-pci');
    await bindDevice(s, GPU, 'vfio-pci'); // EBUSY, already on the target: success
    expect(currentDriver(s, GPU)).toBe('vfio-pci');
  });

  it('bind to a device on another driver fails with EBUSY and names it', async () => {
    const { sysfs: s } = simNode('hgx-h100-8');
    const error = await rejection(bindDevice(s, GPU, 'vfio-pci'));
    expect(error.details).toMatchObject({ errno: 'EBUSY', device: GPU, driver: 'vfio-pci' });
  });

  it('vfio-pci on a host without IOMMU: EINVAL with the IOMMU hint', async () => {
    const { sysfs: s } = simNode('no-iommu');
    const gpu = parsePciAddress('0000:41:00.0');
    await setDriverOverride(s, gpu, 'vfio-pci');
    await unbindDevice(s, gpu);
    const error = await rejection(bindDevice(s, gpu, 'vfio-pci'));
    expect(error.details.errno).toBe('EINVAL');
    expect(error.hint).toMatch(/intel_iommu=on|amd_iommu=on/);
  });

  it('a driver that is not loaded is refused before any write, with the modprobe hint', async () => {
    const { sysfs } = simNode('hgx-h100-8', { vfioLoaded: false });
    const s = sysfs.withRecorder();
    expect(registeredDriverName(s, 'vfio_pci')).toBeUndefined();
    const error = await rejection(bindDevice(s, GPU, 'vfio-pci'));
    expect(error.code).toBe('ERR_GPUCC_DRIVER_NOT_LOADED');
    expect(error.hint).toMatch(/modprobe vfio_pci/);
    expect(s.recorder.writes).toBe(0);
  });

  it('module and driver spellings resolve (vfio_pci → vfio-pci); invalid names never reach a path', async () => {
    const { sysfs: s } = simNode('hgx-h100-8');
    expect(registeredDriverName(s, 'vfio_pci')).toBe('vfio-pci');
    await expect(setDriverOverride(s, GPU, '../../evil')).rejects.toMatchObject({
      code: 'ERR_GPUCC_INVALID_DRIVER_NAME',
    });
  });

  it('an unbind that blocks fails at the deadline with UNBIND_FAILED and the busy hint', async () => {
    const { sysfs: s, root } = simNode('hgx-h100-8');
    await injectFault(root, { kind: 'unbind-hang', device: GPU });
    const error = await rejection(unbindDevice(s, GPU, { timeoutMs: 30 }));
    expect(error.code).toBe('ERR_GPUCC_UNBIND_FAILED');
    expect(error.hint).toMatch(/busy/);
    expect(currentDriver(s, GPU)).toBe('nvidia');
  });

  it('waits for a late /dev/vfio node and gives up on one that never appears, with a clear code', async () => {
    const { sysfs: s, root } = simNode('hgx-h100-8');
    const other = parsePciAddress('0000:23:00.0');
    await injectFault(root, { kind: 'devnode-delay', device: GPU, delayMs: 60 });
    await injectFault(root, { kind: 'devnode-never', device: other });
    for (const address of [GPU, other]) {
      await setDriverOverride(s, address, 'vfio-pci');
      await unbindDevice(s, address);
      await bindDevice(s, address, 'vfio-pci');
    }
    expect(s.exists('dev/vfio/23')).toBe(false);
    await waitForPath(s, 'dev/vfio/23', { present: true, timeoutMs: 2_000, pollMs: 10 });
    expect(s.exists('dev/vfio/23')).toBe(true);
    const error = await rejection(waitForPath(s, 'dev/vfio/27', { present: true, timeoutMs: 100, pollMs: 10 }));
    expect(error.code).toBe('ERR_GPUCC_DEVICE_NODE_TIMEOUT');
  });

  it('drivers_probe returns the device to its host driver', async () => {
    const { sysfs: s } = simNode('hgx-h100-8');
    await unbindDevice(s, GPU);
    expect(await probeDevice(s, GPU)).toBe('nvidia');
  });

  it('reset succeeds, keeps the driver, and reports a failing reset with its errno', async () => {
    const { sysfs: s, root } = simNode('hgx-h100-8');
    await resetDevice(s, GPU);
    expect(currentDriver(s, GPU)).toBe('nvidia');
    await injectFault(root, { kind: 'reset-error', device: GPU, errno: 'EIO' });
    const error = await rejection(resetDevice(s, GPU));
    expect(error.code).toBe('ERR_GPUCC_RESET_FAILED');
    expect(error.details.errno).toBe('EIO');
  });

  it('takes the NVIDIA unbind lock where the driver offers one', async () => {
    const { sysfs: s } = simNode('hgx-h100-8', VGPU_HOST);
    expect(await takeNvidiaUnbindLock(s, GPU)).toBe(true);
    expect(s.read(`proc/driver/nvidia/gpus/${GPU}/unbindLock`)).toBe('1\n');
  });

  it('waits for the unbind lock of a GPU whose nvidia probe has not made its /proc entry yet', async () => {
    // The kernel links the driver before probing: a GPU on nvidia, its /proc entry still to come.
    const { sysfs: s, root } = simNode('hgx-h100-8', VGPU_HOST);
    const entry = path.join(root, `proc/driver/nvidia/gpus/${GPU}`);
    renameSync(entry, `${entry}.probing`);
    setTimeout(() => renameSync(`${entry}.probing`, entry), 150);
    expect(await takeNvidiaUnbindLock(s, GPU)).toBe(true);
    expect(s.read(`proc/driver/nvidia/gpus/${GPU}/unbindLock`)).toBe('1\n');
    // A driver that never makes one (or no /proc/driver/nvidia at all) is not waited for forever.
    rmSync(entry, { recursive: true });
    expect(await takeNvidiaUnbindLock(s, GPU, 50)).toBe(true);
  });

  it.each([
    ['sev-snp', 'sev-snp'],
    ['tdx', 'tdx'],
    ['none', 'none'],
  ] as const)('detects the host TEE %s from the KVM parameters', (tee, expected) => {
    const { sysfs } = simNode('h100-pcie-1', { tee });
    expect(detectHostTee(sysfs)).toBe(expected);
  });
});
