// gpucc benchmarks on simulated nodes of 8, 64 and 256 GPUs (scale profile, one function per card),
// every GPU as a converged node has it: bound (vfio-manager), in a CDI spec (kata-manager write),
// advertised (the device plugin's record), its modes recorded (cc-manager's record), half of them
// allocated in the kubelet checkpoint and held by a qemu process in proc/:
// - `gpucc status --output json` in process (observe + problems, median of 15) and as a process;
// - `gpucc status --watch` (the real binary, piped JSON): a change in a watched directory → the new
//   line, on the 8-GPU node.
// kata-manager's CLI runs in process here, on a simulated node: the simulator is attached as the bin scripts do.
import '@gpucc/sim/attach';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { findProblems, observeNode } from '@gpucc/gpucc';
import {
  discoverPci,
  type HostRoot,
  KUBELET_CHECKPOINT_PATH,
  localFs,
  writeAdvertisedDevices,
  writeCcModes,
} from '@gpucc/hal';
import { main as kataManager } from '@gpucc/kata-manager';
import { createNode, openSimulatedHost } from '@gpucc/sim';
import { vfioApplyOptions } from '@gpucc/testbed/fixtures';
import { bind } from '@gpucc/vfio-manager';
import { type BenchResult, reportBench, sized } from '../../../bench/report.js';
import { repositoryBinaries } from '../src/suite/operands.js';

const base = mkdtempSync(path.join(process.platform === 'linux' ? '/dev/shm' : os.tmpdir(), 'gpucc-status-bench-'));
const BIN = path.resolve(path.dirname(repositoryBinaries()['vfio-manager']), '../../gpucc/bin/gpucc.mjs');
const results: BenchResult[] = [];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** A converged node of `gpus` GPUs, as the four operands and the kubelet leave it. */
async function convergedNode(root: string, gpus: number): Promise<HostRoot> {
  createNode(root, 'scale', { gpus, functionsPerCard: 1 });
  const sysfs = openSimulatedHost(root);
  const bound = await bind(
    sysfs,
    { selection: { all: true }, nvswitches: false, allowForeignGroupMembers: false, dryRun: false },
    vfioApplyOptions(root),
  );
  if (!bound.report?.ok) throw new Error(`binding the ${gpus} GPUs failed`);
  if (
    (await kataManager(['node', 'kata-manager', 'write', '--host-root', root, '--log-level', 'warn'], () => {})) !== 0
  )
    throw new Error('kata-manager write failed');
  const topology = discoverPci(sysfs);
  const units = topology.devices.filter((d) => d.kind === 'gpu');
  await writeAdvertisedDevices(
    sysfs,
    Object.fromEntries(
      units.map((d) => [
        `nvidia.com/pgpu=${d.iommuGroup}`,
        {
          resourceName: 'nvidia.com/pgpu',
          id: String(d.iommuGroup),
          health: 'Healthy' as const,
          functions: [d.address],
          deviceNodes: ['/dev/vfio/vfio', `/dev/vfio/${d.iommuGroup}`],
        },
      ]),
    ),
  );
  await writeCcModes(
    sysfs,
    Object.fromEntries(units.map((d) => [d.address, { cc: 'on', ppcie: 'off', desired: 'on' }])),
  );
  const allocated = units.slice(0, Math.ceil(units.length / 2));
  localFs.writeFileSync(
    path.join(root, KUBELET_CHECKPOINT_PATH),
    JSON.stringify({
      Data: {
        PodDeviceEntries: allocated.map((d, i) => ({
          PodUID: `pod-${i}`,
          ContainerName: 'c',
          ResourceName: 'nvidia.com/pgpu',
          DeviceIDs: { '-1': [String(d.iommuGroup)] },
          AllocResp: 'e30=',
        })),
        RegisteredDevices: { 'nvidia.com/pgpu': units.map((d) => String(d.iommuGroup)) },
      },
      Checksum: 0,
    }),
  );
  // pid 1 and one qemu per allocated GPU, each with a few other fds, as on a host.
  const proc = (pid: number, comm: string, fds: string[]) => {
    localFs.makeDir(path.join(root, `proc/${pid}/fd`));
    localFs.writeFileSync(path.join(root, `proc/${pid}/comm`), `${comm}\n`);
    for (const [i, t] of fds.entries()) localFs.symlinkSync(t, path.join(root, `proc/${pid}/fd/${i}`));
  };
  proc(1, 'systemd', ['/dev/null', '/dev/kmsg']);
  for (const [i, d] of allocated.entries())
    proc(1000 + i, 'qemu-system-x86', ['/dev/null', '/dev/kvm', '/dev/vfio/vfio', `/dev/vfio/${d.iommuGroup}`]);
  return sysfs;
}

function processWall(root: string, runs: number): number {
  const walls: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    execFileSync(process.execPath, [BIN, 'status', '--host-root', root, '--output', 'json', '--log-level', 'error'], {
      stdio: 'ignore',
    });
    walls.push(performance.now() - t);
  }
  return median(walls);
}

/** --watch: a cc-manager record rewritten → the next JSON line, `rounds` times. */
async function watchLatency(root: string, sysfs: HostRoot, rounds: number): Promise<number[]> {
  const child = spawn(process.execPath, [
    BIN,
    'status',
    '--host-root',
    root,
    '--watch',
    '--output',
    'json',
    '--interval',
    '600000',
    '--log-level',
    'error',
  ]);
  const lines: number[] = [];
  let waiting: (() => void) | undefined;
  createInterface({ input: child.stdout! }).on('line', () => {
    lines.push(performance.now());
    waiting?.();
  });
  const next = () => new Promise<void>((resolve) => (waiting = resolve));
  await next(); // the first frame
  const gpu = discoverPci(sysfs).devices.find((d) => d.kind === 'gpu')!.address;
  const latencies: number[] = [];
  try {
    for (let i = 0; i < rounds; i++) {
      const line = next();
      const t = performance.now();
      await writeCcModes(sysfs, { [gpu]: { cc: i % 2 === 0 ? 'off' : 'on', ppcie: 'off', desired: 'on' } });
      await line;
      latencies.push(performance.now() - t);
    }
  } finally {
    child.kill('SIGINT');
  }
  return latencies;
}

try {
  for (const gpus of [8, 64, 256]) {
    const root = path.join(base, `scale-${gpus}`);
    const sysfs = await convergedNode(root, gpus);
    const first = await observeNode(sysfs);
    if (first.devices.length !== gpus || findProblems(first).length !== 0)
      throw new Error(`the ${gpus}-GPU node does not read as converged`);
    const warm: number[] = [];
    for (let i = 0; i < 15; i++) {
      const t = performance.now();
      findProblems(await observeNode(sysfs));
      warm.push(performance.now() - t);
    }
    results.push(sized('status, in process (median of 15)', gpus, median(warm), 'ms'));
    results.push(
      sized('gpucc status --output json, process wall time (median of 5)', gpus, processWall(root, 5), 'ms'),
    );
    if (gpus === 8) {
      const latencies = await watchLatency(root, sysfs, 10);
      results.push({
        name: '--watch: a record rewritten → the new line (median of 10), 8 GPUs',
        value: median(latencies),
        unit: 'ms',
        target: '≤ 250 ms',
      });
      results.push({ name: '--watch: the same, slowest of 10, 8 GPUs', value: Math.max(...latencies), unit: 'ms' });
    }
  }
} finally {
  rmSync(base, { recursive: true, force: true });
}

reportBench('gpucc', 'gpucc status benchmarks', results);
