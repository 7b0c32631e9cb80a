// kata-manager benchmarks on simulated nodes:
// - the event path of `kata-manager run` (the real binary): a /dev/vfio node appears or vanishes
//   (a bind or unbind by the kernel simulator) → the spec on disk says so, with the resync off;
// - on nodes of 8, 64 and 256 GPUs (scale profile, one function per card, all bound): `generate` in
//   process (cold: the first call, with the schema compile; warm: median) and as a process, and the
//   event path with all the other GPUs published.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, watch } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { HostRoot } from '@gpucc/hal';
import { generate } from '@gpucc/kata-manager';
import { createNode, openSimulatedHost } from '@gpucc/sim';
import { bindToVfio, vfioApplyOptions } from '@gpucc/testbed/fixtures';
import { bind } from '@gpucc/vfio-manager';
import { type BenchResult, reportBench, sized } from '../../../bench/report.js';
import { repositoryBinaries } from '../src/suite/operands.js';
import { bareNode } from './measure.js';

const base = mkdtempSync(path.join(process.platform === 'linux' ? '/dev/shm' : os.tmpdir(), 'gpucc-kata-bench-'));
const BIN = repositoryBinaries()['kata-manager'];
const results: BenchResult[] = [];
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const median = (xs: number[]) => sorted(xs)[Math.floor(xs.length / 2)]!;
const p95 = (xs: number[]) => sorted(xs)[Math.min(xs.length - 1, Math.ceil(xs.length * 0.95) - 1)]!;

/** Resolves when `test` holds, checking on every change in `dir` and every 2 ms besides. */
function whenTrue(dir: string, test: () => boolean, timeoutMs = 10_000): Promise<number> {
  return new Promise((resolve, reject) => {
    let watcher: ReturnType<typeof watch> | undefined;
    const finish = (error?: Error) => {
      clearInterval(poll);
      clearTimeout(deadline);
      watcher?.close();
      if (error) reject(error);
      else resolve(performance.now());
    };
    const check = () => {
      if (test()) finish();
    };
    const poll = setInterval(check, 2);
    const deadline = setTimeout(() => finish(new Error('spec did not change in time')), timeoutMs);
    if (existsSync(dir)) watcher = watch(dir, check);
    check();
  });
}

async function startDaemon(root: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [
    BIN,
    'run',
    '--host-root',
    root,
    '--metrics-address',
    '127.0.0.1:0',
    '--resync-interval',
    '600000',
    '--log-format',
    'json',
    '--log-level',
    'info',
  ]);
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (JSON.parse(line).event === 'reconcile.done') resolve();
    });
    child.on('exit', (code) => reject(new Error(`kata-manager run exited ${code}`)));
  });
  return child;
}

/**
 * The event path: each round binds one GPU (its node appears), then unbinds it (its node vanishes).
 * On a `scale` node (`gpus` given) the results are sized; on a named profile they carry its name.
 */
async function eventPath(
  label: string,
  root: string,
  sysfs: HostRoot,
  candidates: string[],
  rounds: number,
  gpus?: number,
) {
  const dir = path.join(root, 'var/run/cdi');
  const file = path.join(dir, 'nvidia.com-pgpu_gpucc.yaml');
  const names = () => (existsSync(file) ? readFileSync(file, 'utf8') : '');
  const daemon = await startDaemon(root);
  const appear: number[] = [];
  const vanish: number[] = [];
  try {
    for (let i = 0; i < rounds; i++) {
      const address = candidates[i % candidates.length]!;
      const group = sysfs.readlink(`sys/bus/pci/devices/${address}/iommu_group`)!.split('/').at(-1);
      const listed = () => names().includes(`name: "${group}"`);
      await bindToVfio(sysfs, address);
      let t0 = performance.now(); // the kernel simulator has created /dev/vfio/<group> by now
      appear.push((await whenTrue(dir, listed)) - t0);
      await sysfs.write('sys/bus/pci/drivers/vfio-pci/unbind', address);
      t0 = performance.now(); // /dev/vfio/<group> is gone
      vanish.push((await whenTrue(dir, () => !listed())) - t0);
      await sysfs.write(`sys/bus/pci/devices/${address}/driver_override`, '\n');
      await sysfs.write('sys/bus/pci/drivers/nvidia/bind', address);
    }
  } finally {
    daemon.kill('SIGTERM');
  }
  const push = (figure: string, value: number, target?: string) =>
    results.push(
      gpus === undefined
        ? { name: `${label}: ${figure}`, value, unit: 'ms', ...(target ? { target } : {}) }
        : sized(`${label}: ${figure}`, gpus, value, 'ms', target),
    );
  push(`node appears → spec on disk (median of ${rounds})`, median(appear), '≤ 100 ms');
  push('node appears → spec on disk (p95)', p95(appear));
  push('node appears → spec on disk (fastest)', Math.min(...appear));
  push(`node vanishes → spec on disk (median of ${rounds})`, median(vanish), '≤ 100 ms');
  push('node vanishes → spec on disk (p95)', p95(vanish));
}

/** Median wall time of `kata-manager generate` as a process. */
function processWall(root: string, runs: number): number {
  const walls: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    execFileSync(process.execPath, [BIN, 'generate', '--host-root', root, '--log-level', 'warn'], { stdio: 'ignore' });
    walls.push(performance.now() - t);
  }
  return median(walls);
}

try {
  // Event path on an HGX H100 node (8 GPUs, 4 NVSwitches, 2 of the GPUs already bound and published).
  const hgx = path.join(base, 'hgx');
  createNode(hgx, 'hgx-h100-8');
  const hgxSysfs = openSimulatedHost(hgx);
  await bindToVfio(hgxSysfs, '0000:13:00.0');
  await bindToVfio(hgxSysfs, '0000:23:00.0');
  await eventPath('hgx-h100-8', hgx, hgxSysfs, ['0000:33:00.0', '0000:43:00.0', '0000:53:00.0', '0000:63:00.0'], 20);

  // Nodes of 8, 64 and 256 GPUs (scale profile, one function per card), all bound: generate in process
  // and as a process, then the event path with all but one GPU published.
  for (const gpus of [8, 64, 256]) {
    const scale = path.join(base, `scale-${gpus}`);
    createNode(scale, 'scale', { gpus, functionsPerCard: 1 });
    const scaleSysfs = openSimulatedHost(scale);
    const bound = await bind(
      scaleSysfs,
      { selection: { all: true }, nvswitches: false, allowForeignGroupMembers: false, dryRun: false },
      vfioApplyOptions(scale),
    );
    if (!bound.report?.ok) throw new Error(`binding the ${gpus} GPUs failed`);

    let t = performance.now();
    const first = generate(scaleSysfs, { aliases: {} });
    const firstMs = performance.now() - t;
    if (first.specs[0]?.spec.devices.length !== gpus) throw new Error(`expected ${gpus} devices`);
    // Only the first call of the process compiles the schema (the smallest node comes first).
    if (gpus === 8) results.push(sized('generate, in process, first call (compiles the schema)', gpus, firstMs, 'ms'));
    const warm: number[] = [];
    for (let i = 0; i < 15; i++) {
      // A new kind each time: new bytes, so the spec is parsed and validated again (no memo hit).
      t = performance.now();
      generate(scaleSysfs, { aliases: { gpuAlias: `gpu${i}` } });
      warm.push(performance.now() - t);
    }
    results.push(
      sized('generate, in process (median of 15)', gpus, median(warm), 'ms', gpus === 256 ? '≤ 150 ms' : undefined),
    );
    // The fastest run is what the code costs when nothing else competes for the CPU.
    results.push(sized('  generate, in process (fastest of 15)', gpus, Math.min(...warm), 'ms'));
    results.push(sized('kata-manager generate, process wall time (median of 5)', gpus, processWall(scale, 5), 'ms'));

    await scaleSysfs.write('sys/bus/pci/drivers/vfio-pci/unbind', '0000:01:00.0');
    await scaleSysfs.write('sys/bus/pci/devices/0000:01:00.0/driver_override', '\n');
    await scaleSysfs.write('sys/bus/pci/drivers/nvidia/bind', '0000:01:00.0');
    await eventPath('scale node', scale, scaleSysfs, ['0000:01:00.0'], 10, gpus);
  }

  const nodeOnly: number[] = [];
  for (let i = 0; i < 5; i++) nodeOnly.push(await bareNode.exit());
  results.push({
    name: 'a bare `node -e 0` start, for the process times (median of 5)',
    value: median(nodeOnly),
    unit: 'ms',
  });
} finally {
  rmSync(base, { recursive: true, force: true });
}

reportBench('kata-manager', 'kata-manager benchmarks', results);
