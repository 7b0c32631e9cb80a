import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { errnoOf, GpuccError, type HostRoot } from '@gpucc/hal';
import { simNode as inProcessNode } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import { openSimulatedHost } from '../src/kernel/index.js';
import { injectFault } from '../src/node/faults.js';
import { readCcState, writeCcState } from '../src/node/state.js';

/** The vGPU-host NVIDIA driver: the only build with an unbind lock (docs/facts/real-hosts.md#the-nvidia-unbind-lock). */
const VGPU_HOST = { nvidiaDriver: 'vgpu-host' } as const;

// Every store goes to the node's kernel process: what it answers is what each writer sees.
const simNode = (
  profile: string,
  options: { nvidiaDriver?: 'vgpu-host'; iommufd?: boolean; vfioCdev?: boolean } = {},
) => inProcessNode(profile, { ...options, kernel: 'process' });

const dev = (bdf: string, attr = '') => `sys/bus/pci/devices/${bdf}${attr ? `/${attr}` : ''}`;
const driverOf = (s: HostRoot, bdf: string) => s.readlink(dev(bdf, 'driver'))?.split('/').pop();

async function expectErrno(promise: Promise<unknown>, errno: string, code = 'ERR_GPUCC_SYSFS_WRITE') {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, `expected ${errno}`).toBeInstanceOf(GpuccError);
  expect((error as GpuccError).code).toBe(code);
  expect(errnoOf(error)).toBe(errno);
}

/** The vfio-manager sequence: override, unbind, bind. */
async function bindVfio(s: HostRoot, bdf: string) {
  await s.write(dev(bdf, 'driver_override'), 'vfio-pci');
  if (driverOf(s, bdf)) await s.write(dev(bdf, 'driver/unbind'), bdf);
  await s.write('sys/bus/pci/drivers/vfio-pci/bind', bdf);
}

const H100 = '0000:13:00.0'; // first GPU of hgx-h100-8, IOMMU group 23

describe('kernel simulator: two processes on one node', () => {
  it('one attaches nvidia after the other removed its proc directory: the unbindLock is there again', async () => {
    const { sysfs: a, root } = simNode('hgx-h100-8', VGPU_HOST);
    const b = openSimulatedHost(root); // another process's kernel simulator on the same node
    // a detaches and re-attaches the GPU (its tree now knows the proc directory exists)...
    await a.write('sys/bus/pci/drivers/nvidia/unbind', H100);
    await a.write('sys/bus/pci/drivers/nvidia/bind', H100);
    // ...b detaches it (removing that directory), then a attaches it again
    await b.write('sys/bus/pci/drivers/nvidia/unbind', H100);
    await a.write('sys/bus/pci/drivers/nvidia/bind', H100);
    expect(driverOf(a, H100)).toBe('nvidia');
    expect(a.readOptional(`proc/driver/nvidia/gpus/${H100}/unbindLock`)).toBe('0\n');
  });
});

describe('kernel simulator: binding', () => {
  it('override → unbind → bind moves a GPU to vfio-pci with links both ways and the group node', async () => {
    const { sysfs: s, root } = simNode('hgx-h100-8');
    const group = s.readlink(dev(H100, 'iommu_group'))!.split('/').pop()!;
    // The data-centre driver: `information` names the device minor, and there is no unbind lock.
    expect(s.read(`proc/driver/nvidia/gpus/${H100}/information`)).toMatch(/^Device Minor:\s+\d+$/m);
    expect(s.exists(`proc/driver/nvidia/gpus/${H100}/unbindLock`)).toBe(false);
    await bindVfio(s, H100);
    expect(driverOf(s, H100)).toBe('vfio-pci');
    expect(s.resolveLink(`sys/bus/pci/drivers/vfio-pci/${H100}`)).toBe(s.resolveLink(dev(H100)));
    expect(s.exists(`dev/vfio/${group}`)).toBe(true);
    expect(s.exists(`sys/bus/pci/drivers/nvidia/${H100}`)).toBe(false);
    expect(s.exists(`proc/driver/nvidia/gpus/${H100}`)).toBe(false);
    // the override survives the bind, exactly as in the kernel
    expect(s.read(dev(H100, 'driver_override'))).toBe('vfio-pci\n');
    const log = readFileSync(path.join(root, '.gpucc-sim/writes.jsonl'), 'utf8').trim().split('\n');
    expect(log.map((l) => JSON.parse(l).result)).toEqual(['ok', 'ok', 'ok']);
  });

  it('vfio-pci never matches without driver_override (override-only static table)', async () => {
    const { sysfs: s } = simNode('hgx-h100-8');
    await s.write(dev(H100, 'driver/unbind'), H100);
    await expectErrno(s.write('sys/bus/pci/drivers/vfio-pci/bind', H100), 'ENODEV');
    expect(driverOf(s, H100)).toBeUndefined();
  });

  it('bind of a bound device is EBUSY; bind against another driver’s override is ENODEV', async () => {
    const { sysfs: s } = simNode('hgx-h100-8');
    await expectErrno(s.write('sys/bus/pci/drivers/nvidia/bind', H100), 'EBUSY');
    await s.write(dev(H100, 'driver_override'), 'vfio-pci');
    await s.write(dev(H100, 'driver/unbind'), H100);
    await expectErrno(s.write('sys/bus/pci/drivers/nvidia/bind', H100), 'ENODEV');
  });

  it('unbind from a driver the device is not bound to is ENODEV', async () => {
    const { sysfs: s } = simNode('hgx-h100-8');
    await expectErrno(s.write('sys/bus/pci/drivers/vfio-pci/unbind', H100), 'ENODEV');
    expect(driverOf(s, H100)).toBe('nvidia');
  });

  it('bind of an address that does not exist is ENODEV', async () => {
    const { sysfs: s } = simNode('h100-pcie-1');
    await expectErrno(s.write('sys/bus/pci/drivers/vfio-pci/bind', '0000:99:00.0'), 'ENODEV');
  });

  it('vfio-pci refuses a device without IOMMU group (EINVAL) and a PCIe bridge (EINVAL)', async () => {
    const off = simNode('no-iommu');
    const gpu = '0000:41:00.0';
    await off.sysfs.write(dev(gpu, 'driver_override'), 'vfio-pci');
    await off.sysfs.write(dev(gpu, 'driver/unbind'), gpu);
    await expectErrno(off.sysfs.write('sys/bus/pci/drivers/vfio-pci/bind', gpu), 'EINVAL');

    const { sysfs: s } = simNode('hgx-h100-8');
    const port = '0000:10:01.1';
    await s.write(dev(port, 'driver_override'), 'vfio-pci');
    await s.write(dev(port, 'driver/unbind'), port);
    await expectErrno(s.write('sys/bus/pci/drivers/vfio-pci/bind', port), 'EINVAL');
  });

  it('the group node stays while any function of the group is on VFIO and goes with the last', async () => {
    const { sysfs: s } = simNode('workstation-mixed');
    const fns = ['0000:01:00.0', '0000:01:00.1', '0000:01:00.2', '0000:01:00.3'];
    for (const f of fns) await bindVfio(s, f);
    expect(s.exists('dev/vfio/12')).toBe(true);
    await s.write(dev(fns[0]!, 'driver/unbind'), fns[0]!);
    expect(s.exists('dev/vfio/12')).toBe(true);
    for (const f of fns.slice(1)) await s.write(dev(f, 'driver/unbind'), f);
    expect(s.exists('dev/vfio/12')).toBe(false);
  });

  it('iommufd host: bind creates vfio-dev/vfioN, /dev/vfio/devices/vfioN and char links, lowest free N', async () => {
    const { sysfs: s } = simNode('iommufd-h200-2');
    const [a, b] = ['0000:23:00.0', '0000:43:00.0'];
    expect(s.exists('dev/iommu')).toBe(true);
    await bindVfio(s, a);
    await bindVfio(s, b);
    expect(s.read(dev(a, 'vfio-dev/vfio0/dev'))).toBe('511:0\n');
    expect(s.read(dev(b, 'vfio-dev/vfio1/dev'))).toBe('511:1\n');
    expect(s.exists('dev/vfio/devices/vfio0')).toBe(true);
    expect(s.resolveLink('sys/dev/char/511:1')).toBe(`${s.resolveLink(dev(b))}/vfio-dev/vfio1`);
    expect(s.resolveLink('sys/class/vfio-dev/vfio0')).toBe(`${s.resolveLink(dev(a))}/vfio-dev/vfio0`);
    await s.write(dev(a, 'driver/unbind'), a);
    expect(s.exists('dev/vfio/devices/vfio0')).toBe(false);
    expect(s.exists('sys/dev/char/511:0')).toBe(false);
    await s.write('sys/bus/pci/drivers/vfio-pci/bind', a);
    expect(s.exists(dev(a, 'vfio-dev/vfio0'))).toBe(true); // renumbered from the lowest free number
  });
});

describe('kernel simulator: VFIO kernel options (docs/facts/kernel-sysfs-pci.md#vfio-cdevs-per-device)', () => {
  const gpu = '0000:23:00.0'; // iommufd-h200-2, IOMMU group 43
  it.each([
    ['IOMMUFD and VFIO_DEVICE_CDEV', { iommufd: true }, { iommu: true, devices: true, dev: true }],
    [
      'IOMMUFD without VFIO_DEVICE_CDEV',
      { iommufd: true, vfioCdev: false },
      { iommu: true, devices: false, dev: false },
    ],
    ['neither', { iommufd: false }, { iommu: false, devices: false, dev: false }],
  ] as const)('%s: what a bind leaves', async (_kernel, options, expected) => {
    const { sysfs: s } = simNode('iommufd-h200-2', options);
    await bindVfio(s, gpu);
    expect(s.exists('dev/vfio/43')).toBe(true); // the group node, whatever the options
    expect({
      iommu: s.exists('dev/iommu'),
      devices: s.exists('dev/vfio/devices'),
      dev: s.exists(dev(gpu, 'vfio-dev/vfio0/dev')),
    }).toEqual(expected);
    // A VFIO registration without a device number (6.1 on, with or without iommufd): no char link, no node.
    if (!expected.dev) {
      expect(s.readdir(dev(gpu, 'vfio-dev'))).toEqual(['vfio0']);
      expect(s.exists('sys/dev/char/511:0')).toBe(false);
    }
    await s.write(dev(gpu, 'driver/unbind'), gpu);
    expect(s.exists(dev(gpu, 'vfio-dev'))).toBe(false);
    expect(s.exists('sys/class/vfio-dev/vfio0')).toBe(false);
  });
});

describe('kernel simulator: driver_override', () => {
  it('stores up to the first newline; "\\n" and NUL-only clear; a zero-length write changes nothing', async () => {
    const { sysfs: s } = simNode('h100-pcie-1');
    const gpu = '0000:41:00.0';
    expect(s.read(dev(gpu, 'driver_override'))).toBe('(null)\n');
    await s.write(dev(gpu, 'driver_override'), 'vfio-pci\nextra');
    expect(s.read(dev(gpu, 'driver_override'))).toBe('vfio-pci\n');
    await s.write(dev(gpu, 'driver_override'), '');
    expect(s.read(dev(gpu, 'driver_override'))).toBe('vfio-pci\n');
    await s.write(dev(gpu, 'driver_override'), '\n');
    expect(s.read(dev(gpu, 'driver_override'))).toBe('(null)\n');
    await s.write(dev(gpu, 'driver_override'), 'none');
    await s.write(dev(gpu, 'driver_override'), '\0');
    expect(s.read(dev(gpu, 'driver_override'))).toBe('(null)\n');
  });

  it('refuses an override of a page or more with EINVAL', async () => {
    const { sysfs: s } = simNode('h100-pcie-1');
    await expectErrno(s.write(dev('0000:41:00.0', 'driver_override'), 'x'.repeat(4095)), 'EINVAL');
  });

  it('an override naming no driver ("none") blocks every bind path', async () => {
    const { sysfs: s } = simNode('h100-pcie-1');
    const gpu = '0000:41:00.0';
    await s.write(dev(gpu, 'driver_override'), 'none');
    await s.write(dev(gpu, 'driver/unbind'), gpu);
    await s.write('sys/bus/pci/drivers_probe', gpu);
    expect(driverOf(s, gpu)).toBeUndefined();
    await expectErrno(s.write('sys/bus/pci/drivers/nvidia/bind', gpu), 'ENODEV');
  });
});

describe('kernel simulator: file semantics', () => {
  it('never creates a missing attribute (no O_CREAT) and reports it as missing', async () => {
    const { sysfs: s, root } = simNode('h100-pcie-1');
    await expectErrno(s.write(dev('0000:41:00.0', 'no_such_attr'), '1'), 'ENOENT', 'ERR_GPUCC_ATTRIBUTE_MISSING');
    expect(existsSync(path.join(root, 'sys/bus/pci/devices/0000:41:00.0/no_such_attr'))).toBe(false);
  });

  it('reading a write-only attribute and writing a read-only one fail with EACCES', async () => {
    const { sysfs: s } = simNode('h100-pcie-1');
    expect(() => s.read('sys/bus/pci/drivers/vfio-pci/bind')).toThrow(/EACCES/);
    await expectErrno(s.write(dev('0000:41:00.0', 'vendor'), '0x1234'), 'EACCES', 'ERR_GPUCC_PERMISSION_DENIED');
    expect(s.read(dev('0000:41:00.0', 'vendor'))).toBe('0x10de\n');
  });

  it('enable is EBUSY while a driver is bound; power/control accepts only auto|on', async () => {
    const { sysfs: s } = simNode('h100-pcie-1');
    await expectErrno(s.write(dev('0000:41:00.0', 'enable'), '0'), 'EBUSY');
    await expectErrno(s.write(dev('0000:41:00.0', 'power/control'), 'off'), 'EINVAL');
    await s.write(dev('0000:41:00.0', 'power/control'), 'on');
    expect(s.read(dev('0000:41:00.0', 'power/control'))).toBe('on\n');
  });
});

describe('kernel simulator: probe paths', () => {
  it('drivers_probe honours the override, succeeds when nothing matches, and re-probes the host driver', async () => {
    const { sysfs: s } = simNode('h100-pcie-1');
    const gpu = '0000:41:00.0';
    await s.write(dev(gpu, 'driver/unbind'), gpu);
    await s.write('sys/bus/pci/drivers_probe', gpu);
    expect(driverOf(s, gpu)).toBe('nvidia');
    await s.write(dev(gpu, 'driver_override'), 'vfio-pci');
    await s.write(dev(gpu, 'driver/unbind'), gpu);
    await s.write('sys/bus/pci/drivers_probe', gpu);
    expect(driverOf(s, gpu)).toBe('vfio-pci');
    await expectErrno(s.write('sys/bus/pci/drivers_probe', '0000:99:00.0'), 'ENODEV');
  });

  it('new_id binds every matching unbound device (all cards of a model); EEXIST, EINVAL and remove_id errors', async () => {
    const { sysfs: s } = simNode('hgx-h100-8');
    const gpus = ['0000:13:00.0', '0000:23:00.0'];
    for (const g of gpus) await s.write(dev(g, 'driver/unbind'), g);
    await s.write('sys/bus/pci/drivers/vfio-pci/new_id', '10de 2330');
    for (const g of gpus) expect(driverOf(s, g)).toBe('vfio-pci');
    expect(driverOf(s, '0000:33:00.0')).toBe('nvidia'); // bound ones are left alone
    await expectErrno(s.write('sys/bus/pci/drivers/vfio-pci/new_id', '10de 2330'), 'EEXIST');
    await expectErrno(s.write('sys/bus/pci/drivers/vfio-pci/new_id', '10de'), 'EINVAL');
    await s.write('sys/bus/pci/drivers/vfio-pci/remove_id', '10de 2330');
    await expectErrno(s.write('sys/bus/pci/drivers/vfio-pci/remove_id', '10de 2330'), 'ENODEV');
    expect(driverOf(s, gpus[0]!)).toBe('vfio-pci'); // remove_id does not unbind
  });

  it('remove drops the device and its override; rescan brings it back and autoprobes', async () => {
    const { sysfs: s } = simNode('h100-pcie-1');
    const gpu = '0000:41:00.0';
    await s.write(dev(gpu, 'driver_override'), 'vfio-pci');
    await s.write(dev(gpu, 'remove'), '1');
    expect(s.exists(dev(gpu))).toBe(false);
    await expectErrno(s.write('sys/bus/pci/drivers/nvidia/bind', gpu), 'ENODEV');
    await s.write('sys/bus/pci/rescan', '1');
    expect(s.read(dev(gpu, 'driver_override'))).toBe('(null)\n');
    expect(driverOf(s, gpu)).toBe('nvidia');
    await s.write('sys/bus/pci/drivers_autoprobe', '0');
    await s.write(dev(gpu, 'remove'), '1');
    await s.write('sys/bus/pci/rescan', '1');
    expect(driverOf(s, gpu)).toBeUndefined();
  });
});

describe('kernel simulator: reset', () => {
  it('accepts only "1", keeps the binding and makes the pending CC mode active', async () => {
    const { sysfs: s, root } = simNode('hgx-h100-8');
    await expectErrno(s.write(dev(H100, 'reset'), '2'), 'EINVAL');
    const state = readCcState(root, H100)!;
    writeCcState(root, H100, { ...state, ccPending: 'on' });
    expect(readCcState(root, H100)!.cc).toBe('off');
    await s.write(dev(H100, 'reset'), '1');
    expect(readCcState(root, H100)!.cc).toBe('on');
    expect(driverOf(s, H100)).toBe('nvidia');
  });

  it('is ENOTTY when no reset method is enabled', async () => {
    const { sysfs: s } = simNode('hgx-h100-8');
    await expectErrno(s.write(dev(H100, 'reset_method'), 'warp'), 'EINVAL');
    await s.write(dev(H100, 'reset_method'), '\n'); // "\n" disables every method
    expect(s.read(dev(H100, 'reset_method'))).toBe('\n');
    await expectErrno(s.write(dev(H100, 'reset'), '1'), 'ENOTTY');
  });
});

describe('kernel simulator: injected faults', () => {
  it('an unbind that hangs hits the caller’s deadline with a timeout error and the device stays bound', async () => {
    const { sysfs: s, root } = simNode('hgx-h100-8');
    await injectFault(root, { kind: 'unbind-hang', device: H100 });
    await expect(s.write(dev(H100, 'driver/unbind'), H100, { timeoutMs: 50 })).rejects.toMatchObject({
      code: 'ERR_GPUCC_SYSFS_WRITE_TIMEOUT',
    });
    expect(driverOf(s, H100)).toBe('nvidia');
    expect(s.recorder.writeLog.at(-1)?.result).toBe('timeout');
  });

  it('unbind EBUSY, bind EAGAIN and reset EIO fail with their errno; a counted fault is used up', async () => {
    const { sysfs: s, root } = simNode('hgx-h100-8');
    await injectFault(root, { kind: 'unbind-error', device: H100, errno: 'EBUSY', times: 1 });
    await expectErrno(s.write(dev(H100, 'driver/unbind'), H100), 'EBUSY');
    await s.write(dev(H100, 'driver/unbind'), H100); // the fault fired once
    await injectFault(root, { kind: 'bind-error', device: H100, errno: 'EAGAIN' });
    await s.write(dev(H100, 'driver_override'), 'vfio-pci');
    await expectErrno(s.write('sys/bus/pci/drivers/vfio-pci/bind', H100), 'EAGAIN');
    expect(driverOf(s, H100)).toBeUndefined();
    await injectFault(root, { kind: 'reset-error', device: H100 });
    await expectErrno(s.write(dev(H100, 'reset'), '1'), 'EIO');
  });

  it('a late device node appears after the bind returned; a never-appearing one stays absent', async () => {
    const { sysfs: s, root } = simNode('hgx-h100-8');
    const other = '0000:23:00.0';
    await injectFault(root, { kind: 'devnode-delay', device: H100, delayMs: 400 });
    await injectFault(root, { kind: 'devnode-never', device: other });
    await bindVfio(s, H100);
    expect(driverOf(s, H100)).toBe('vfio-pci');
    expect(s.exists('dev/vfio/23')).toBe(false); // the bind returned well before the node's delay
    await bindVfio(s, other);
    while (!s.exists('dev/vfio/23')) await new Promise((r) => setTimeout(r, 20)); // it does come
    expect(driverOf(s, other)).toBe('vfio-pci');
    expect(s.readdir('dev/vfio')).not.toContain(s.readlink(dev(other, 'iommu_group'))!.split('/').pop());
  });

  it('a device that vanishes mid-sequence fails the next write with ENODEV', async () => {
    const { sysfs: s, root } = simNode('hgx-h100-8');
    await s.write(dev(H100, 'driver_override'), 'vfio-pci');
    await injectFault(root, { kind: 'device-gone', device: H100 });
    await expectErrno(s.write(dev(H100, 'driver/unbind'), H100), 'ENODEV');
    expect(s.exists(dev(H100))).toBe(false);
  });

  it('a reset that leaves the CC mode unchanged (cc-stuck) keeps the old mode', async () => {
    const { sysfs: s, root } = simNode('hgx-h100-8');
    writeCcState(root, H100, { ...readCcState(root, H100)!, ccPending: 'on' });
    await injectFault(root, { kind: 'cc-stuck', device: H100 });
    await s.write(dev(H100, 'reset'), '1');
    expect(readCcState(root, H100)!.cc).toBe('off');
  });

  it('refuses unknown fault kinds, errno names and devices', async () => {
    const { root } = simNode('h100-pcie-1');
    await expect(injectFault(root, { kind: 'melt' as never })).rejects.toMatchObject({
      code: 'ERR_GPUCC_SIM_INVALID_FAULT',
    });
    await expect(injectFault(root, { kind: 'bind-error', errno: 'busy' })).rejects.toMatchObject({
      code: 'ERR_GPUCC_SIM_INVALID_FAULT',
    });
    await expect(injectFault(root, { kind: 'bind-error', device: '0000:99:00.0' })).rejects.toMatchObject({
      code: 'ERR_GPUCC_SIM_INVALID_FAULT',
    });
  });
});
