// vfio-manager benchmarks on simulated nodes: bind time and writes per device for 8, 64 and 256 GPUs,
// reads and writes on a converged node, and the wall time of `vfio-manager bind --all` as a process
// (on the converged 8/64/256-GPU nodes and on a converged hgx-h100-8).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createNode, openSimulatedHost } from '@gpucc/sim';
import { type ApplyOptions, bind, exitCodeOf } from '@gpucc/vfio-manager';
import { type BenchResult, reportBench, sized } from '../../../bench/report.js';
import { silentLogger } from '../src/fixtures/logs.js';
import { repositoryBinaries } from '../src/suite/operands.js';
import { bareNode } from './measure.js';

const base = mkdtempSync(path.join(process.platform === 'linux' ? '/dev/shm' : os.tmpdir(), 'gpucc-vfio-bench-'));
const options: ApplyOptions = {
  logger: silentLogger(),
  loadModules: false,
  modprobe: {},
  unbindTimeoutMs: 10_000,
  deviceNodeTimeoutMs: 10_000,
};
const ALL = { selection: { all: true as const }, nvswitches: false, allowForeignGroupMembers: false, dryRun: false };
const results: BenchResult[] = [];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const bin = repositoryBinaries()['vfio-manager'];
/** Median wall time of `vfio-manager bind --all` as a process on a converged node. */
function processWall(root: string, runs: number): number {
  const walls: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    execFileSync(process.execPath, [bin, 'bind', '--all', '--host-root', root], { stdio: 'ignore' });
    walls.push(performance.now() - t);
  }
  return median(walls);
}

try {
  for (const gpus of [8, 64, 256]) {
    const root = path.join(base, `scale-${gpus}`);
    createNode(root, 'scale', { gpus, functionsPerCard: 1 });
    const sysfs = openSimulatedHost(root);
    let t = performance.now();
    const first = await bind(sysfs, ALL, options);
    const bindMs = performance.now() - t;
    if (exitCodeOf(first) !== 0) throw new Error(`bind of ${gpus} GPUs failed`);
    const moved = first.report!.results.filter((r) => r.outcome === 'bound').length;
    results.push(sized('bind --all (cold)', gpus, bindMs, 'ms', gpus === 256 ? '≤ 2000 ms' : undefined));
    const sysWrites = sysfs.recorder.writeLog.filter((w) => w.path.startsWith('sys/')).length;
    results.push(sized('sysfs writes per device moved', gpus, sysWrites / moved, 'writes', '= 3'));
    results.push(
      sized('  other writes (state file, NVIDIA unbind lock)', gpus, sysfs.recorder.writes - sysWrites, 'writes'),
    );
    const converged = sysfs.withRecorder();
    t = performance.now();
    await bind(converged, ALL, options);
    results.push(sized('bind --all on the converged node', gpus, performance.now() - t, 'ms'));
    results.push(sized('  reads on the converged node', gpus, converged.recorder.reads, 'reads'));
    results.push(sized('  writes on the converged node', gpus, converged.recorder.writes, 'writes', '= 0'));
    results.push(
      sized('vfio-manager bind --all as a process, converged node (median of 5)', gpus, processWall(root, 5), 'ms'),
    );
  }

  // The binary as an operator runs it, on a converged hgx-h100-8 node.
  const hgx = path.join(base, 'hgx');
  createNode(hgx, 'hgx-h100-8');
  execFileSync(process.execPath, [bin, 'bind', '--all', '--host-root', hgx], { stdio: 'ignore' });
  results.push({
    name: 'vfio-manager bind --all, converged hgx-h100-8, process wall time (median of 7)',
    value: processWall(hgx, 7),
    unit: 'ms',
    target: '≤ 300 ms',
  });
  const nodeOnly: number[] = [];
  for (let i = 0; i < 7; i++) nodeOnly.push(await bareNode.exit());
  results.push({ name: '  of which a bare `node -e 0` start (median of 7)', value: median(nodeOnly), unit: 'ms' });
} finally {
  rmSync(base, { recursive: true, force: true });
}

reportBench('vfio-manager', 'vfio-manager benchmarks', results);
