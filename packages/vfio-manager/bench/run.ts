// vfio-manager benchmarks on simulated nodes: bind time and writes per device for 8, 64 and 256 GPUs,
// reads and writes on a converged node, and the wall time of `vfio-manager bind --all` as a process.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '@gpucc/daemon';
import { type BenchResult, reportBench } from '../../../bench/report.js';
import { openSimulatedSysfs } from '../../sim/src/kernel/index.js';
import { createNode } from '../../sim/src/node/create.js';
import type { ApplyOptions } from '../src/apply.js';
import { bind, exitCodeOf } from '../src/engine.js';

const base = mkdtempSync(path.join(process.platform === 'linux' ? '/dev/shm' : os.tmpdir(), 'gpucc-vfio-bench-'));
const options: ApplyOptions = {
  logger: createLogger({ name: 'bench', format: 'json', level: 'silent' }),
  loadModules: false,
  modprobe: {},
  unbindTimeoutMs: 10_000,
  deviceNodeTimeoutMs: 10_000,
};
const ALL = { selection: { all: true as const }, nvswitches: false, allowForeignGroupMembers: false, dryRun: false };
const results: BenchResult[] = [];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

try {
  for (const gpus of [8, 64, 256]) {
    const root = path.join(base, `scale-${gpus}`);
    createNode(root, 'scale', { gpus, functionsPerCard: 1 });
    const sysfs = openSimulatedSysfs(root);
    let t = performance.now();
    const first = await bind(sysfs, ALL, options);
    const bindMs = performance.now() - t;
    if (exitCodeOf(first) !== 0) throw new Error(`bind of ${gpus} GPUs failed`);
    const moved = first.report!.results.filter((r) => r.outcome === 'bound').length;
    results.push({
      name: `bind --all, ${gpus} GPUs (cold)`,
      value: bindMs,
      unit: 'ms',
      ...(gpus === 256 ? { target: '≤ 2000 ms' } : {}),
    });
    const sysWrites = sysfs.recorder.writeLog.filter((w) => w.path.startsWith('sys/')).length;
    results.push({
      name: `sysfs writes per device moved, ${gpus} GPUs`,
      value: sysWrites / moved,
      unit: 'writes',
      target: '= 3',
    });
    results.push({
      name: `  other writes (state file, NVIDIA unbind lock), ${gpus} GPUs`,
      value: sysfs.recorder.writes - sysWrites,
      unit: 'writes',
    });
    const converged = sysfs.withRecorder();
    t = performance.now();
    await bind(converged, ALL, options);
    results.push({ name: `bind --all on the converged node, ${gpus} GPUs`, value: performance.now() - t, unit: 'ms' });
    results.push({
      name: `  reads / writes on the converged node, ${gpus} GPUs`,
      value: converged.recorder.reads,
      unit: `reads, ${converged.recorder.writes} writes`,
    });
  }

  // The binary as an operator runs it, on a converged hgx-h100-8 node.
  const hgx = path.join(base, 'hgx');
  createNode(hgx, 'hgx-h100-8');
  const bin = path.resolve(import.meta.dirname, '../bin/vfio-manager.mjs');
  execFileSync(process.execPath, [bin, 'bind', '--all', '--host-root', hgx], { stdio: 'ignore' });
  const walls: number[] = [];
  for (let i = 0; i < 7; i++) {
    const t = performance.now();
    execFileSync(process.execPath, [bin, 'bind', '--all', '--host-root', hgx], { stdio: 'ignore' });
    walls.push(performance.now() - t);
  }
  results.push({
    name: 'vfio-manager bind --all, converged hgx-h100-8, process wall time (median of 7)',
    value: median(walls),
    unit: 'ms',
    target: '≤ 300 ms',
  });
  const nodeOnly: number[] = [];
  for (let i = 0; i < 7; i++) {
    const t = performance.now();
    execFileSync(process.execPath, ['-e', '0']);
    nodeOnly.push(performance.now() - t);
  }
  results.push({ name: '  of which a bare `node -e 0` start (median of 7)', value: median(nodeOnly), unit: 'ms' });
} finally {
  rmSync(base, { recursive: true, force: true });
}

reportBench('vfio-manager', 'vfio-manager benchmarks', results);
