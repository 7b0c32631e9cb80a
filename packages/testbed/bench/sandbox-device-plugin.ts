// sandbox-device-plugin benchmarks on a simulated hgx-h100-8 node (8 GPUs + 4 NVSwitches on VFIO),
// the plugin running as the real binary and the fake kubelet in this process:
//   exec → registered, idle RSS, Allocate latency under 16 concurrent callers, device node gone →
//   Unhealthy on the stream, unbind → Unhealthy, kubelet restart → re-registered;
// then most of them again, fewer times, on `scale` nodes of 8, 64 and 256 GPUs.
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { localFs } from '@gpucc/hal';
import { DevicePluginClient } from '@gpucc/hal/kubelet';
import { createNode, FakeKubelet, type KubeletState, openSimulatedHost } from '@gpucc/sim';
import { bind } from '@gpucc/vfio-manager';
import { type BenchResult, reportBench, sized } from '../../../bench/report.js';
import { silentLogger } from '../src/fixtures/logs.js';
import { repositoryBinaries } from '../src/suite/operands.js';

const BIN = repositoryBinaries()['sandbox-device-plugin'];
/** The single executable of `pnpm build:binaries`, measured too when it has been built. */
const SEA = path.resolve(import.meta.dirname, '../../../dist/binaries/sandbox-device-plugin');
const PGPU = 'nvidia.com/pgpu';
const NVSWITCH = 'nvidia.com/nvswitch';
const base = mkdtempSync(path.join(process.platform === 'linux' ? '/dev/shm' : os.tmpdir(), 'gpucc-sdp-bench-'));
const results: BenchResult[] = [];

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const quantile = (xs: number[], q: number) => sorted(xs)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;
const median = (xs: number[]) => quantile(xs, 0.5);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
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

function startPlugin(root: string, nvswitches: boolean, executable?: string): ChildProcess {
  const child = spawn(
    executable ?? process.execPath,
    [
      ...(executable ? [] : [BIN]),
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
  options: { ready: Ready; nvswitches: boolean; rssRuns: number; executable?: string } = {
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
    plugin = startPlugin(root, options.nvswitches, options.executable);
    await kubelet.waitFor((s) => (s.resources[PGPU]?.registrations ?? 0) > before && options.ready(s), 20_000);
    starts.push(performance.now() - t);
    if (i < runs - options.rssRuns) continue;
    await sleep(2_000); // idle: start-up garbage collected, nothing to do
    rss.push(rssMb(plugin.pid!));
  }
  return { starts, rss, plugin: plugin! };
}

async function allocateLatency(socket: string, ids: string[], calls = { single: 500, concurrent: 300 }) {
  const callers = Array.from({ length: 16 }, () => new DevicePluginClient(socket));
  const call = (client: DevicePluginClient, n: number) =>
    client.allocate({ container_requests: [{ devices_ids: [ids[n % ids.length]!, ids[(n + 3) % ids.length]!] }] });
  for (const client of callers) for (let n = 0; n < 20; n++) await call(client, n); // connect and warm up
  const single: number[] = [];
  for (let n = 0; n < calls.single; n++) {
    const t = performance.now();
    await call(callers[0]!, n);
    single.push(performance.now() - t);
  }
  const concurrent: number[] = [];
  await Promise.all(
    callers.map(async (client, c) => {
      for (let n = 0; n < calls.concurrent; n++) {
        const t = performance.now();
        await call(client, c + n);
        concurrent.push(performance.now() - t);
      }
    }),
  );
  for (const client of callers) client.close();
  return { single, concurrent };
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
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

try {
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

  // exec → registered (both resources streaming), and idle RSS after each start.
  const { starts, rss, plugin } = await measureStarts(root, kubelet, 7);
  results.push({
    name: 'exec → registered with the kubelet (median of 7)',
    value: median(starts),
    unit: 'ms',
    target: '≤ 300 ms',
  });
  results.push({ name: '  slowest of 7', value: Math.max(...starts), unit: 'ms' });
  results.push({
    name: 'idle RSS, 2 s after registering (median of 7)',
    value: median(rss),
    unit: 'MB',
    target: '≤ 56 MB',
  });

  // The same tree without the simulator's marker is an ordinary host tree (as a captured real host
  // would be): the plugin then runs exactly as in production, without loading the kernel simulator.
  const plain = path.join(base, 'plain');
  cpSync(root, plain, { recursive: true, verbatimSymlinks: true, filter: (src) => !src.endsWith('.sock') });
  rmSync(path.join(plain, '.gpucc-sim'), { recursive: true });
  const plainKubelet = new FakeKubelet({ root: plain });
  await plainKubelet.start();
  const plainRun = await measureStarts(plain, plainKubelet, 3);
  await stopPlugin(plainRun.plugin);
  const seaResults: BenchResult[] = [];
  // The single executable (V8 code cache, no module resolution) on the same plain tree, when built.
  if (localFs.exists(SEA)) {
    const seaRun = await measureStarts(plain, plainKubelet, 5, {
      ready: both,
      nvswitches: true,
      rssRuns: 3,
      executable: SEA,
    });
    await stopPlugin(seaRun.plugin);
    seaResults.push(
      {
        name: '  exec → registered, single executable (median of 5)',
        value: median(seaRun.starts),
        unit: 'ms',
        target: '≤ 300 ms',
      },
      { name: '  idle RSS, single executable (median of 3)', value: median(seaRun.rss), unit: 'MB', target: '≤ 56 MB' },
    );
  }

  await plainKubelet.stop();
  results.push({
    name: '  idle RSS on a plain host tree, no simulator loaded (median of 3)',
    value: median(plainRun.rss),
    unit: 'MB',
  });
  results.push({
    name: '  exec → registered on the plain host tree (median of 3)',
    value: median(plainRun.starts),
    unit: 'ms',
  });
  results.push(...seaResults);

  // Allocate latency: 16 callers on their own connections, each 300 calls back to back.
  const ids = Object.values(kubelet.state().resources[PGPU]!.devices).map((d) => d.ID);
  const { single, concurrent } = await allocateLatency(kubelet.endpointPath(PGPU)!, ids);
  results.push({ name: 'Allocate, 1 caller: p50', value: median(single), unit: 'ms' });
  results.push({
    name: 'Allocate, 16 concurrent callers: p50',
    value: median(concurrent),
    unit: 'ms',
    target: '≤ 2 ms',
  });
  results.push({ name: 'Allocate, 16 concurrent callers: p99', value: quantile(concurrent, 0.99), unit: 'ms' });
  // The same measurement against a bare grpc-js server of the same API: what grpc-js itself costs here.
  const floorSocket = path.join(base, 'floor.sock');
  const floor = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(import.meta.dirname, 'floor-server.ts'), floorSocket],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  children.add(floor);
  await new Promise((resolve) => floor.stdout!.once('data', resolve));
  const floorRun = await allocateLatency(floorSocket, ids);
  floor.kill('SIGTERM');
  results.push({ name: '  bare grpc-js server, same calls: 1 caller p50', value: median(floorRun.single), unit: 'ms' });
  results.push({
    name: '  bare grpc-js server, 16 concurrent callers: p50',
    value: median(floorRun.concurrent),
    unit: 'ms',
  });

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

reportBench('sandbox-device-plugin', 'sandbox-device-plugin benchmarks', results);
