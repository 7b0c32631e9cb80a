// Issue 13 item 1 and 3: processes that hold a GPU, as a real host's /proc shows them, and what the
// simulated kernel does with them (docs/facts/real-hosts.md).
import { findHolders, HostRoot, holdersOf, parsePciAddress } from '@gpucc/hal';
import { simNode } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import { holdGpu, releaseHolder, vmHold } from '../src/node/holders.js';

const HELD = '0000:13:00.0';
const OTHER = '0000:23:00.0';
const driverOf = (s: HostRoot, a: string) => s.readlink(`sys/bus/pci/devices/${a}/driver`)?.split('/').pop();

describe('holders of a GPU on the simulated node', () => {
  it('hold: the process is under proc/ with the GPU’s /dev/nvidia<minor> open, found by the hal', () => {
    const { root } = simNode('hgx-h100-8');
    const pid = holdGpu(root, HELD);
    const scan = findHolders(new HostRoot(root));
    expect(holdersOf(scan, parsePciAddress(HELD))).toEqual([
      { pid, comm: 'nvidia-persistenced', vm: false, node: '/dev/nvidia0', kind: 'nvidia', addresses: [HELD] },
    ]);
    expect(holdersOf(scan, parsePciAddress(OTHER))).toEqual([]);
    releaseHolder(root, pid);
    expect(findHolders(new HostRoot(root)).holders).toEqual([]);
  });

  it('an unbind of a held GPU blocks in the kernel until the holder is released; other devices go on', async () => {
    const { root, sysfs } = simNode('hgx-h100-8', { kernel: 'process' });
    const pid = holdGpu(root, HELD, { comm: 'dcgm' });
    let done = false;
    const unbind = sysfs.write('sys/bus/pci/drivers/nvidia/unbind', HELD).then(() => {
      done = true;
    });
    await sysfs.write('sys/bus/pci/drivers/nvidia/unbind', OTHER); // a later store to another GPU returns
    expect(done).toBe(false);
    expect(driverOf(sysfs, HELD)).toBe('nvidia');
    expect(driverOf(sysfs, OTHER)).toBeUndefined();
    releaseHolder(root, pid);
    await unbind;
    expect(driverOf(sysfs, HELD)).toBeUndefined();
  });

  it('the data-centre driver has no unbind lock; the vGPU-host driver has one, refused while a holder is there', async () => {
    expect(simNode('hgx-h100-8').sysfs.exists(`proc/driver/nvidia/gpus/${HELD}/unbindLock`)).toBe(false);
    const { root, sysfs } = simNode('hgx-h100-8', { nvidiaDriver: 'vgpu-host' });
    const lock = `proc/driver/nvidia/gpus/${HELD}/unbindLock`;
    const pid = holdGpu(root, HELD);
    await sysfs.write(lock, '1');
    expect(sysfs.read(lock)).toBe('0\n');
    releaseHolder(root, pid);
    await sysfs.write(lock, '1');
    expect(sysfs.read(lock)).toBe('1\n');
  });

  it('vm-hold: a qemu process with the group node open and enable 1; release sets enable back to 0', async () => {
    const { root, sysfs } = simNode('hgx-h100-8');
    await sysfs.write(`sys/bus/pci/devices/${HELD}/driver_override`, 'vfio-pci');
    await sysfs.write('sys/bus/pci/drivers/nvidia/unbind', HELD);
    await sysfs.write('sys/bus/pci/drivers/vfio-pci/bind', HELD);
    const pid = vmHold(root, HELD);
    const [holder] = holdersOf(findHolders(sysfs), parsePciAddress(HELD));
    expect(holder).toMatchObject({ pid, comm: 'qemu-system-x86_64', kind: 'vfio-group' });
    expect(sysfs.read(`sys/bus/pci/devices/${HELD}/enable`).trim()).toBe('1');
    releaseHolder(root, pid);
    expect(sysfs.read(`sys/bus/pci/devices/${HELD}/enable`).trim()).toBe('0');
  });

  it('hold refuses a GPU that is not on nvidia, release a pid that holds nothing', () => {
    const { root } = simNode('hgx-h100-8');
    expect(() => vmHold(root, HELD)).toThrow(/not on a VFIO driver/);
    expect(() => releaseHolder(root, 4321)).toThrow(/no simulated process 4321/);
  });
});
