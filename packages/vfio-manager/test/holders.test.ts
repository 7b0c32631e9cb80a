// Issue 13 item 1: on the data-centre NVIDIA driver an unbind under a holder blocks until the holder
// exits (docs/facts/real-hosts.md#an-nvidia-unbind-waits-for-the-last-client): vfio-manager finds
// the holders under the host's /proc and refuses those GPUs, binding the others. Through the binary.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { discoverPci, HostRoot } from '@gpucc/hal';
import { holdGpu, readWriteLog, vmHold } from '@gpucc/sim';
import { simNode } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import { vfio } from './bin.js';

const GPUS = ['13', '23', '33', '43', '53', '63', '73', '83'].map((bus) => `0000:${bus}:00.0`);
const HELD = '0000:43:00.0';

const driverOf = (root: string, gpu: string) =>
  discoverPci(new HostRoot(root)).devices.find((d) => d.address === gpu)?.driver;

describe('vfio-manager and GPUs held by a process', () => {
  it('bind --all refuses the held GPU naming its holder, writes nothing for it, binds the other seven', async () => {
    const { root } = simNode('hgx-h100-8');
    const pid = holdGpu(root, HELD);
    const plan = await vfio(['plan', '--all', '--host-root', root]);
    expect(plan.stdout).toContain(
      `ERR_GPUCC_DEVICE_IN_USE: nvidia-persistenced (pid ${pid}) holds ${HELD}: stop it, then retry`,
    );
    expect(plan.stdout).toMatch(new RegExp(`${HELD}.*held by nvidia-persistenced \\(pid ${pid}\\)`));

    const bind = await vfio(['bind', '--all', '--host-root', root]);
    expect(bind.code).toBe(1);
    expect(`${bind.stdout}${bind.stderr}`).toContain(`nvidia-persistenced (pid ${pid}) holds ${HELD}`);
    expect(GPUS.map((g) => driverOf(root, g))).toEqual(GPUS.map((g) => (g === HELD ? 'nvidia' : 'vfio-pci')));
    expect(readWriteLog(root).filter((w) => w.path.includes(HELD) || w.value.includes(HELD))).toEqual([]);

    const status = JSON.parse((await vfio(['status', '--output', 'json', '--host-root', root])).stdout);
    const held = status.devices.find((d: { address: string }) => d.address === HELD);
    expect(held.heldBy).toEqual([`nvidia-persistenced (pid ${pid})`]);
  });

  it('unbind --restore refuses a device a VM holds and releases the others', async () => {
    const { root } = simNode('hgx-h100-8');
    expect((await vfio(['bind', '--all', '--host-root', root])).code).toBe(0);
    const pid = vmHold(root, HELD);
    const release = await vfio(['unbind', '--all', '--restore', '--host-root', root]);
    expect(release.code).toBe(1);
    expect(`${release.stdout}${release.stderr}`).toContain(`qemu-system-x86_64 (pid ${pid}) holds ${HELD}`);
    expect(GPUS.map((g) => driverOf(root, g))).toEqual(GPUS.map((g) => (g === HELD ? 'vfio-pci' : 'nvidia')));
  });

  it('a VFIO device with enable 1 and no holder found under /proc (no hostPID) is refused as held, holder unknown', async () => {
    const { root } = simNode('hgx-h100-8');
    expect((await vfio(['bind', '--all', '--host-root', root])).code).toBe(0);
    writeFileSync(path.join(root, 'sys/bus/pci/devices', HELD, 'enable'), '1\n');
    const release = await vfio(['unbind', '--all', '--host-root', root]);
    expect(release.code).toBe(1);
    expect(`${release.stdout}${release.stderr}`).toContain(`holder unknown holds ${HELD}`);
    expect(driverOf(root, HELD)).toBe('vfio-pci');
  });
});
