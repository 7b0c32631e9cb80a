import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { simNode } from '@gpucc/testbed/vitest';
import { afterEach, describe, expect, it } from 'vitest';
import { type KernelClient, kernelPid, openSimulatedHost, stopKernel } from '../src/kernel/index.js';
import { treeInconsistencies } from '../src/node/consistency.js';
import { injectFault } from '../src/node/faults.js';
import { readWriteLog } from '../src/node/write-log.js';

// Writers are separate processes on the built package (as the operands are), so that they can be
// killed and can block their own threadpool without touching the test's.
const WRITER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'writer.mjs');
const GPUS = ['0000:13:00.0', '0000:23:00.0', '0000:33:00.0', '0000:43:00.0'];
const ALL_GPUS = [...GPUS, '0000:53:00.0', '0000:63:00.0', '0000:73:00.0', '0000:83:00.0'];

const children: ChildProcess[] = [];
const kernels: number[] = [];

function writer(root: string, ...args: string[]) {
  const env = { ...process.env };
  delete env.UV_THREADPOOL_SIZE; // the pool of 4 threads is what a hung write takes from
  const child = spawn(process.execPath, [WRITER, root, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env });
  children.push(child);
  let out = '';
  const waiters: { text: string; resolve: () => void }[] = [];
  child.stdout!.on('data', (chunk) => {
    out += String(chunk);
    for (const w of waiters.filter((w) => out.includes(w.text))) w.resolve();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    exited,
    output: () => out,
    printed: (text: string) =>
      out.includes(text) ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ text, resolve })),
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Every store already sent to a GPU has returned once a later store to it has (they queue per device). */
async function quiesce(root: string) {
  const sysfs = openSimulatedHost(root);
  for (const bdf of ALL_GPUS) await sysfs.write(`sys/bus/pci/devices/${bdf}/power/control`, 'on');
  return sysfs;
}

/**
 * The write log replayed in the kernel's order: a bind that succeeded on a device already bound is
 * what two unserialized kernels produce (each saw the device free), never one kernel.
 */
function bindsOfBoundDevices(root: string): string[] {
  const bound = new Set<string>();
  const problems: string[] = [];
  for (const w of readWriteLog(root).filter((entry) => entry.result === 'ok')) {
    if (/^sys\/bus\/pci\/drivers\/[^/]+\/bind$/.test(w.path)) {
      if (bound.has(w.value)) problems.push(`${w.path} <- ${w.value} (pid ${w.pid}) while bound`);
      bound.add(w.value);
    }
    const unbind = /^sys\/bus\/pci\/devices\/([^/]+)\/driver\/unbind$/.exec(w.path);
    if (unbind) bound.delete(unbind[1]!);
  }
  return problems;
}

/** Seeded delays, so that a failing run can be replayed (mulberry32). */
function delays(seed: number, count: number, maxMs: number): number[] {
  let a = seed;
  return Array.from({ length: count }, () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * maxMs);
  });
}

afterEach(async () => {
  for (const child of children.splice(0))
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

describe('the simulated kernel runs as its own process', () => {
  it('a kill -9 of a writer at random points of a bind never leaves a state no kernel produces', async () => {
    const { root } = simNode('hgx-h100-8', { kernel: 'process' });
    let kernel: number | undefined;
    for (const [i, ms] of delays(12, 8, 120).entries()) {
      const w = writer(root, 'cycle');
      await w.printed('ready');
      kernel ??= kernelPid(root);
      await new Promise((resolve) => setTimeout(resolve, ms));
      w.child.kill('SIGKILL');
      expect((await w.exited).signal).toBe('SIGKILL');
      await quiesce(root);
      expect(treeInconsistencies(root), `kill ${i} after ${ms} ms`).toEqual([]);
    }
    // The kernel a writer started is not the writer's: it outlived every kill.
    expect(kernel).toBeDefined();
    expect(kernelPid(root)).toBe(kernel);
    kernels.push(kernel!);
  });

  it('two writers at once are serialized: the tree stays one a kernel produces, every store is logged', async () => {
    const { root } = simNode('hgx-h100-8', { kernel: 'process' });
    const a = writer(root, 'cycle', '4');
    const b = writer(root, 'cycle', '4');
    expect(await a.exited).toEqual({ code: 0, signal: null });
    expect(await b.exited).toEqual({ code: 0, signal: null });
    await quiesce(root);
    expect(treeInconsistencies(root)).toEqual([]);
    expect(bindsOfBoundDevices(root)).toEqual([]);
    const pids = new Set(readWriteLog(root).map((w) => w.pid));
    expect(pids.has(a.child.pid!) && pids.has(b.child.pid!)).toBe(true);
  });

  it('a store waits for a hung store to the same device (its device_lock); other devices go on', async () => {
    const { root, sysfs } = simNode('hgx-h100-8', { kernel: 'process' });
    const [hung, other] = GPUS as [string, string];
    await injectFault(root, { kind: 'unbind-hang', device: hung, delayMs: 300 });
    const unbind = sysfs.write(`sys/bus/pci/devices/${hung}/driver/unbind`, hung);
    const sameDevice = sysfs.write(`sys/bus/pci/devices/${hung}/driver_override`, 'vfio-pci');
    await sysfs.write(`sys/bus/pci/devices/${other}/driver_override`, 'vfio-pci');
    await Promise.all([unbind, sameDevice]);
    const order = readWriteLog(root).map((w) => `${w.path.split('/')[4]} ${w.path.split('/').slice(5).join('/')}`);
    expect(order).toEqual([`${other} driver_override`, `${hung} driver/unbind`, `${hung} driver_override`]);
  });

  it('the kill-after-writes fault kills the writer right after its N-th store, which is complete', async () => {
    const { root } = simNode('hgx-h100-8', { kernel: 'process' });
    await injectFault(root, { kind: 'kill-after-writes', afterWrites: 5 });
    const w = writer(root, 'cycle', '1');
    expect((await w.exited).signal).toBe('SIGKILL');
    await quiesce(root);
    const mine = readWriteLog(root).filter((entry) => entry.pid === w.child.pid);
    expect(mine.map((entry) => entry.result)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
    expect(treeInconsistencies(root)).toEqual([]);
  });

  it('a hung unbind is a real blocked write, held off the writer’s threadpool: seven stop none of its file operations', async () => {
    const { root } = simNode('hgx-h100-8', { kernel: 'process' });
    for (const gpu of ALL_GPUS.slice(0, 7)) await injectFault(root, { kind: 'unbind-hang', device: gpu });

    // Before issue 13 four of these took libuv's four threads and the read below never started.
    const seven = writer(root, 'hang', ...ALL_GPUS.slice(0, 7));
    await seven.printed('hung');
    expect(seven.output()).toContain(`hung ${Array(7).fill('ERR_GPUCC_SYSFS_WRITE_TIMEOUT').join(',')}`);
    await seven.printed('read-done');
    // The stores are still blocked in the kernel: none of them completed.
    expect(readWriteLog(root).filter((w) => w.path.endsWith('/unbind'))).toEqual([]);
    const pid = kernelPid(root)!;
    await stopKernel(root);
    expect(await seven.exited).toEqual({ code: 0, signal: null });
    expect(alive(pid)).toBe(false);
  });

  it('a kernel started on demand exits by itself once no writer is left; none survives the tests', async () => {
    const { root } = simNode('hgx-h100-8', { kernel: 'process' });
    const previous = process.env.GPUCC_SIM_KERNEL_IDLE_MS;
    process.env.GPUCC_SIM_KERNEL_IDLE_MS = '100'; // inherited by the kernel this process starts
    try {
      const sysfs = openSimulatedHost(root);
      await sysfs.write(`sys/bus/pci/devices/${GPUS[0]}/power/control`, 'on');
      const pid = kernelPid(root)!;
      expect(alive(pid)).toBe(true);
      (sysfs.kernel as KernelClient).close();
      while (alive(pid)) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(kernelPid(root)).toBeUndefined();
    } finally {
      if (previous === undefined) delete process.env.GPUCC_SIM_KERNEL_IDLE_MS;
      else process.env.GPUCC_SIM_KERNEL_IDLE_MS = previous;
    }
    expect(kernels.filter(alive)).toEqual([]);
  });
});
