// sandbox-device-plugin benchmarks:
//   against the Go reference plugin and a bare Node.js process, in the same run (plugin-vs-go.ts):
//   exec → registered, RSS idle and after 5,000 Allocate calls, Allocate latency under 16 callers;
//   then on a simulated hgx-h100-8 node (8 GPUs + 4 NVSwitches on VFIO), the plugin running as the
//   real binary and the fake kubelet in this process: device node gone → Unhealthy on the stream,
//   unbind → Unhealthy, kubelet restart → re-registered;
//   then most of them again, fewer times, on `scale` nodes of 8, 64 and 256 GPUs.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { localFs } from '@gpucc/hal';
import { createNode, FakeKubelet, type KubeletState, openSimulatedHost } from '@gpucc/sim';
import { bind } from '@gpucc/vfio-manager';
import { type BenchResult, reportBench, sized } from '../../../bench/report.js';
import { silentLogger } from '../src/fixtures/logs.js';
import { repositoryBinaries } from '../src/suite/operands.js';
import { allocateLatency, IDLE_MS, median, rssMb, sleep } from './measure.js';
import { compareWithGo } from './plugin-vs-go.js';

const BIN = repositoryBinaries()['sandbox-device-plugin'];
const PGPU = 'nvidia.com/pgpu';
const NVSWITCH = 'nvidia.com/nvswitch';
const base = mkdtempSync(path.join(process.platform === 'linux' ? '/dev/shm' : os.tmpdir(), 'gpucc-sdp-bench-'));
const results: BenchResult[] = [];

const both = (s: KubeletState) => s.resources[PGPU]?.allocatable === 8 && s.resources[NVSWITCH]?.allocatable === 4;
type Ready = (s: KubeletState) => boolean;

const bindOptions = {
  logger: silentLogger(),
  loadModules: false,
  modprobe: {},
  unbindTimeoutMs: 10_000,
  deviceNodeTimeoutMs: 10_000,
};

/** Every plugin started, so that a failed run leaves none behind. */
const children = new Set<ChildProcess>();

function startPlugin(root: string, nvswitches: boolean): ChildProcess {
  const child = spawn(
    process.execPath,
    [
      BIN,
      'run',
      '--host-root',
      root,
      ...(nvswitches ? ['--nvswitches'] : []),
      '--metrics-address',
      '127.0.0.1:0',
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function stopPlugin(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/**
 * Starts the binary `runs` times (each after stopping the last); the last one is left running. The
 * idle RSS is taken 2 s after each of the last `rssRuns` starts.
 */
async function measureStarts(
  root: string,
  kubelet: FakeKubelet,
  runs: number,
  options: { ready: Ready; nvswitches: boolean; rssRuns: number } = {
    ready: both,
    nvswitches: true,
    rssRuns: runs,
  },
) {
  const starts: number[] = [];
  const rss: number[] = [];
  let plugin: ChildProcess | undefined;
  for (let i = 0; i < runs; i++) {
    if (plugin) await stopPlugin(plugin);
    const before = kubelet.state().resources[PGPU]?.registrations ?? 0;
    const t = performance.now();
    plugin = startPlugin(root, options.nvswitches);
    await kubelet.waitFor((s) => (s.resources[PGPU]?.registrations ?? 0) > before && options.ready(s), 20_000);
    starts.push(performance.now() - t);
    if (i < runs - options.rssRuns) continue;
    await sleep(IDLE_MS);
    rss.push(rssMb(plugin.pid!));
  }
  return { starts, rss, plugin: plugin! };
}

/**
 * The same measurements, fewer times, on `scale` nodes of 8, 64 and 256 GPUs (one function per card,
 * all on VFIO, no NVSwitches): how start-up, memory, Allocate and the stream grow with the node.
 */
async function scaleRun(gpus: number): Promise<void> {
  const root = path.join(base, `scale-${gpus}`);
  createNode(root, 'scale', { gpus, functionsPerCard: 1 });
  const bound = await bind(
    openSimulatedHost(root),
    { selection: { all: true }, nvswitches: false, allowForeignGroupMembers: false, dryRun: false },
    bindOptions,
  );
  if (!bound.report?.ok) throw new Error(`binding the ${gpus} GPUs failed`);
  const kubelet = new FakeKubelet({ root });
  await kubelet.start();
  const all = (s: KubeletState) => s.resources[PGPU]?.allocatable === gpus;
  try {
    const { starts, rss, plugin } = await measureStarts(root, kubelet, 3, {
      ready: all,
      nvswitches: false,
      rssRuns: 1,
    });
    results.push(sized('exec → registered with the kubelet (median of 3)', gpus, median(starts), 'ms'));
    results.push(sized('idle RSS, 2 s after registering', gpus, rss[0]!, 'MB'));
    const ids = Object.values(kubelet.state().resources[PGPU]!.devices).map((d) => d.ID);
    const { single, concurrent } = await allocateLatency(kubelet.endpointPath(PGPU)!, ids, {
      single: 200,
      concurrent: 50,
    });
    results.push(sized('Allocate, 1 caller: p50 (of 200)', gpus, median(single), 'ms'));
    results.push(sized('Allocate, 16 concurrent callers: p50 (of 800)', gpus, median(concurrent), 'ms'));
    const health = (id: string) => (s: KubeletState) => s.resources[PGPU]?.devices.find((d) => d.ID === id)?.health;
    const down: number[] = [];
    for (let i = 0; i < 10; i++) {
      const id = ids[i % ids.length]!;
      const node = path.join(root, 'dev/vfio', id);
      const t = performance.now();
      localFs.removeSync(node);
      await kubelet.waitFor((s) => health(id)(s) === 'Unhealthy');
      down.push(performance.now() - t);
      localFs.writeFileSync(node, '', 0o600);
      await kubelet.waitFor((s) => health(id)(s) === 'Healthy');
    }
    results.push(sized('device node gone → Unhealthy on the stream (median of 10)', gpus, median(down), 'ms'));
    const restarts: number[] = [];
    for (let i = 0; i < 10; i++) {
      const before = kubelet.state().resources[PGPU]!.registrations;
      const t = performance.now();
      await kubelet.restart();
      await kubelet.waitFor((s) => s.resources[PGPU]!.registrations > before && all(s));
      restarts.push(performance.now() - t);
    }
    results.push(sized('kubelet restart → re-registered (median of 10)', gpus, median(restarts), 'ms'));
    await stopPlugin(plugin);
  } finally {
    await kubelet.stop();
  }
}

const notes: string[] = [];
try {
  const vsGo = await compareWithGo(base);
  results.push(...vsGo.results);
  notes.push(...vsGo.notes);

  const root = path.join(base, 'hgx');
  createNode(root, 'hgx-h100-8');
  const sysfs = openSimulatedHost(root);
  const bound = await bind(
    sysfs,
    { selection: { all: true }, nvswitches: true, allowForeignGroupMembers: false, dryRun: false },
    bindOptions,
  );
  if (!bound.report?.ok) throw new Error('binding the simulated node failed');
  const kubelet = new FakeKubelet({ root });
  await kubelet.start();

  // The plugin on the simulated node, for what follows: the stream's reaction to the node's changes.
  const { plugin } = await measureStarts(root, kubelet, 1, { ready: both, nvswitches: true, rssRuns: 0 });
  const ids = Object.values(kubelet.state().resources[PGPU]!.devices).map((d) => d.ID);

  // Device node gone (udev removed it) → Unhealthy on the stream, and back.
  const health = (id: string) => (s: KubeletState) => s.resources[PGPU]?.devices.find((d) => d.ID === id)?.health;
  const down: number[] = [];
  const up: number[] = [];
  for (let i = 0; i < 20; i++) {
    const id = ids[i % ids.length]!;
    const node = path.join(root, 'dev/vfio', id);
    let t = performance.now();
    localFs.removeSync(node);
    await kubelet.waitFor((s) => health(id)(s) === 'Unhealthy');
    down.push(performance.now() - t);
    t = performance.now();
    localFs.writeFileSync(node, '', 0o600);
    await kubelet.waitFor((s) => health(id)(s) === 'Healthy');
    up.push(performance.now() - t);
  }
  results.push({
    name: 'device node gone → Unhealthy on the stream (median of 20)',
    value: median(down),
    unit: 'ms',
    target: '≤ 50 ms',
  });
  results.push({ name: '  slowest of 20', value: Math.max(...down), unit: 'ms' });
  results.push({ name: 'device node back → Healthy on the stream (median of 20)', value: median(up), unit: 'ms' });

  // Unbind from vfio-pci (the kernel removes the node) → Unhealthy; bind → Healthy.
  const unbound: number[] = [];
  for (let i = 0; i < 10; i++) {
    const address = '0000:53:00.0'; // group 39
    const t = performance.now();
    await sysfs.write('sys/bus/pci/drivers/vfio-pci/unbind', address);
    await kubelet.waitFor((s) => health('39')(s) === 'Unhealthy');
    unbound.push(performance.now() - t);
    await sysfs.write('sys/bus/pci/drivers/vfio-pci/bind', address);
    await kubelet.waitFor((s) => health('39')(s) === 'Healthy');
  }
  results.push({
    name: 'unbind from vfio-pci → Unhealthy on the stream (median of 10)',
    value: median(unbound),
    unit: 'ms',
  });

  // Kubelet restart → both resources registered again and streaming the full list.
  const restarts: number[] = [];
  for (let i = 0; i < 20; i++) {
    const before = kubelet.state().resources[PGPU]!.registrations;
    const t = performance.now();
    await kubelet.restart();
    await kubelet.waitFor(
      (s) => s.resources[PGPU]!.registrations > before && s.resources[NVSWITCH]!.registrations > before && both(s),
    );
    restarts.push(performance.now() - t);
  }
  results.push({
    name: 'kubelet restart → re-registered (median of 20)',
    value: median(restarts),
    unit: 'ms',
    target: '≤ 100 ms',
  });
  results.push({ name: '  slowest of 20', value: Math.max(...restarts), unit: 'ms' });

  await stopPlugin(plugin);
  await kubelet.stop();

  for (const gpus of [8, 64, 256]) await scaleRun(gpus);
} finally {
  for (const child of children) child.kill('SIGKILL');
  rmSync(base, { recursive: true, force: true });
}

reportBench('sandbox-device-plugin', 'sandbox-device-plugin benchmarks', results, { notes });
