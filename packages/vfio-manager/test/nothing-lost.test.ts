// Issue 12, "Nothing lost": two vfio-manager writers at once, an unbind that finishes after its
// deadline, NVIDIA unbind locks left by a kill -9, a restore to a driver that cannot be restored, and
// temp files of a killed state write. Through the binary, on simulated hgx-h100-8 nodes.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { discoverPci, HostRoot } from '@gpucc/hal';
import { injectFault, readWriteLog } from '@gpucc/sim';
import { simNode } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import { LOCK_FILE, readState, STATE_FILE } from '../src/state.js';
import { BIN, vfio } from './bin.js';

/** The vGPU-host NVIDIA driver: the only build with an unbind lock (docs/facts/real-hosts.md#the-nvidia-unbind-lock). */
const VGPU_HOST = { nvidiaDriver: 'vgpu-host' } as const;

const GPUS = ['13', '23', '33', '43', '53', '63', '73', '83'].map((bus) => `0000:${bus}:00.0`);
const HUNG = '0000:43:00.0';

function start(args: string[]): { child: ChildProcess; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: 'ignore' });
  return { child, exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
}

async function until(test: () => boolean, what: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`${what}: not reached in time`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const gpuDrivers = (root: string) => {
  const devices = discoverPci(new HostRoot(root)).devices;
  return GPUS.map((a) => devices.find((d) => d.address === a)?.driver ?? null);
};
const lockValue = (root: string, gpu: string) =>
  readFileSync(path.join(root, 'proc/driver/nvidia/gpus', gpu, 'unbindLock'), 'utf8').trim();

describe('two vfio-manager writers', () => {
  it('never lose a previous-driver record: the second waits for the host lock, or gives up with ERR_GPUCC_LOCKED', async () => {
    const { root } = simNode('hgx-h100-8');
    expect((await vfio(['bind', '--all', '--host-root', root])).code).toBe(0);
    // The fixed-order race: a restore that hangs 4 s on one GPU, then a bind while it runs.
    await injectFault(root, { kind: 'unbind-hang', device: HUNG, delayMs: 4000, times: 1 });
    const before = readWriteLog(root).length;
    const restore = start(['unbind', '--all', '--restore', '--host-root', root]);
    await until(
      () =>
        readWriteLog(root)
          .slice(before)
          .some((w) => w.path.includes(HUNG)),
      'the restore reached the hung GPU',
    );
    const impatient = await vfio(['bind', '--all', '--lock-timeout', '100', '--host-root', root]);
    expect(impatient.code).toBe(1);
    expect(impatient.stderr).toMatch(
      /ERR_GPUCC_LOCKED: vfio-manager bind: another process holds \/var\/lib\/gpucc\/vfio-manager.lock/,
    );
    const bind = await vfio(['bind', '--all', '--host-root', root]); // waits for the restore, then binds
    expect(bind.code).toBe(0);
    expect(await restore.exited).toBe(0);
    expect(gpuDrivers(root)).toEqual(Array(8).fill('vfio-pci'));
    const state = readState(new HostRoot(root));
    expect(GPUS.map((a) => state.devices[a]?.previousDriver)).toEqual(Array(8).fill('nvidia'));
    expect((await vfio(['unbind', '--all', '--restore', '--host-root', root])).code).toBe(0);
    expect(gpuDrivers(root)).toEqual(Array(8).fill('nvidia'));
  });
});

describe('an unbind that times out and then finishes', () => {
  it('keeps its record, so status --desired none is not converged and restore puts the GPU back', async () => {
    const { root } = simNode('hgx-h100-8');
    await injectFault(root, { kind: 'unbind-hang', device: HUNG, delayMs: 1500, times: 1 });
    const bind = await vfio(['bind', '--all', '--unbind-timeout', '300', '--host-root', root]);
    expect(bind.code).toBe(1);
    expect(bind.stdout).toMatch(/0000:43:00\.0\s+failed.*ERR_GPUCC_UNBIND_FAILED.*did not return within 300 ms/);
    // the simulated kernel finished the unbind after the deadline: the GPU has no driver now
    await until(() => gpuDrivers(root)[3] === null, 'the late unbind completed');
    expect(readState(new HostRoot(root)).devices[HUNG]).toMatchObject({ previousDriver: 'nvidia' });
    const status = await vfio(['status', '--desired', 'none', '--output', 'json', '--host-root', root]);
    expect(status.code).toBe(1);
    expect(JSON.parse(status.stdout).converged).toBe(false);
    const restore = await vfio(['unbind', '--all', '--restore', '--host-root', root]);
    expect(restore.code).toBe(0);
    expect(restore.stdout).toMatch(/0000:43:00\.0\s+restored\s+nvidia/);
    expect(gpuDrivers(root)).toEqual(Array(8).fill('nvidia'));
    expect((await vfio(['status', '--desired', 'none', '--host-root', root])).code).toBe(0);
  });
});

describe('kill -9 while NVIDIA unbind locks are held', () => {
  it('records the locks before taking them; status reports them; the next unbind --restore gives them back', async () => {
    const { root } = simNode('hgx-h100-8', VGPU_HOST);
    await injectFault(root, { kind: 'kill-after-writes', afterWrites: 8 });
    const killed = await vfio(['bind', '--all', '--host-root', root]);
    expect(killed.code).toBeNull(); // SIGKILL, right after the 8th lock
    expect(GPUS.map((g) => lockValue(root, g))).toEqual(Array(8).fill('1'));
    expect(readState(new HostRoot(root)).unbindLocks).toEqual(GPUS);
    expect(existsSync(path.join(root, LOCK_FILE))).toBe(true); // the killed process's host lock
    const status = await vfio(['status', '--desired', 'none', '--host-root', root]);
    expect(status.code).toBe(1);
    expect(status.stdout).toContain(`NVIDIA unbind lock held (new CUDA clients refused) on ${GPUS.join(', ')}`);
    const restore = await vfio(['unbind', '--all', '--nvswitches', '--restore', '--host-root', root]);
    expect(restore.code).toBe(0);
    expect(GPUS.map((g) => lockValue(root, g))).toEqual(Array(8).fill('0'));
    expect(readState(new HostRoot(root)).unbindLocks).toBeUndefined();
    expect((await vfio(['status', '--desired', 'none', '--host-root', root])).code).toBe(0);
  });
});

describe('restore validates the recorded driver before the first write', () => {
  it.each([
    ['../../../../etc', 'ERR_GPUCC_INVALID_DRIVER_NAME'],
    ['nouveau', 'ERR_GPUCC_DRIVER_NOT_LOADED'],
  ])('previousDriver %s: refused with %s, the GPU stays on vfio-pci, nothing written', async (driver, code) => {
    const { root } = simNode('hgx-h100-8');
    expect((await vfio(['bind', '--device', GPUS[0]!, '--host-root', root])).code).toBe(0);
    const file = path.join(root, STATE_FILE);
    const state = JSON.parse(readFileSync(file, 'utf8'));
    state.devices[GPUS[0]!].previousDriver = driver;
    writeFileSync(file, JSON.stringify(state));
    const writes = readWriteLog(root).length;
    const restore = await vfio(['unbind', '--device', GPUS[0]!, '--restore', '--host-root', root]);
    expect(restore.code).toBe(1);
    expect(restore.stdout).toMatch(new RegExp(`0000:13:00\\.0\\s+refused.*${code}`));
    expect(readWriteLog(root).length).toBe(writes);
    expect(gpuDrivers(root)[0]).toBe('vfio-pci');
    expect(readState(new HostRoot(root)).devices[GPUS[0]!]?.previousDriver).toBe(driver);
  });
});

describe('temp files of a state write killed half-way', () => {
  it('are removed by the next run that holds the lock', async () => {
    const { root } = simNode('hgx-h100-8');
    const dir = path.join(root, path.dirname(STATE_FILE));
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, '.vfio-manager.json.4242.0badcafe.tmp'), '{"version":1,');
    writeFileSync(path.join(dir, 'unrelated.tmp'), 'keep');
    expect((await vfio(['bind', '--all', '--host-root', root])).code).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['unrelated.tmp', 'vfio-manager.json']);
  });
});
