// sandbox-device-plugin against the Go reference device plugin (go-reference/main.go, grpc-go and
// the kubelet's generated API; built by scripts/go-reference.sh) and a bare Node.js process, all
// measured in the same run, so that the ratios hold on any machine. Both plugins serve the same 8
// GPUs of a plain hgx-h100-8 host tree (bound to vfio-pci, no simulator) as nvidia.com/pgpu, one
// at a time, behind the same kubelet: the kubelet's own device manager (our harness of the real
// tier, test/k8s) when it is built, else our fake kubelet. Allocate is driven on each plugin's own
// socket by the same grpc-js client, since the harness admits one pod at a time.
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { createNode, FakeKubelet, openSimulatedHost } from '@gpucc/sim';
import { bind } from '@gpucc/vfio-manager';
import { type BenchResult, compared, type Reference } from '../../../bench/report.js';
import { goReferenceBinary, realBinDir } from '../../../test/real/processes.js';
import { silentLogger } from '../src/fixtures/logs.js';
import { DeviceManager } from '../src/real/index.js';
import {
  allocateLatency,
  asDaemon,
  bareNode,
  cachedAsAfterExec,
  IDLE_MS,
  type Launch,
  median,
  plainHostTree,
  productionForm,
  quantile,
  rssMb,
  sleep,
  stopChild,
} from './measure.js';

const PGPU = 'nvidia.com/pgpu';
const GPUS = 8;
const STARTS = 7;

/** The kubelet both plugins register with: how many devices of a resource it counts allocatable. */
interface BenchKubelet {
  description: string;
  allocatable(): Promise<number>;
  stop(): Promise<void>;
}

async function startKubelet(root: string, pluginDir: string): Promise<BenchKubelet> {
  const real = realBinDir();
  if ('dir' in real) {
    const manager = await DeviceManager.start(real.dir, pluginDir, 2);
    // scripts/k8s.sh names the release in the cache key (kubernetes-<version>-…).
    const release = /kubernetes-(v[^-/]+)/.exec(real.dir)?.[1] ?? 'of test/k8s';
    return {
      description: `the kubelet’s own device manager (k8s.io/kubernetes ${release}, grpc-go) in the real tier’s harness`,
      allocatable: async () => (await manager.state()).resources[PGPU]?.allocatable ?? 0,
      stop: () => manager.stop(),
    };
  }
  const kubelet = new FakeKubelet({ root });
  await kubelet.start();
  return {
    description: `our fake kubelet (grpc-js), as the kubelet's device manager is not built (${real.why})`,
    allocatable: async () => kubelet.state().resources[PGPU]?.allocatable ?? 0,
    stop: () => kubelet.stop(),
  };
}

/** Resolves when the kubelet counts `n` devices allocatable, asking it again as soon as it answers. */
async function untilAllocatable(kubelet: BenchKubelet, n: number, timeoutMs = 20_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while ((await kubelet.allocatable()) !== n) {
    if (performance.now() > deadline) throw new Error(`the kubelet did not count ${n} ${PGPU} in time`);
    // Every 2 ms, not in a tight loop: the harness answering the poll shares the CPUs with the
    // plugin that is starting, which a busy poll slowed by more than the Go plugin's whole start.
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

interface Plugin {
  name: string;
  launch: (root: string, pluginDir: string) => Launch;
  /** Its socket in the plugin directory, once it has registered. */
  socket: (pluginDir: string) => string;
}

function ours(): Plugin {
  const form = asDaemon(productionForm('sandbox-device-plugin'));
  return {
    name: 'ours',
    launch: (root) => ({
      ...form,
      args: [...form.args, 'run', '--host-root', root, '--metrics-address', '127.0.0.1:0', '--log-level', 'warn'],
    }),
    socket: (dir) => {
      const name = readdirSync(dir).find((f) => f.startsWith('sandbox-') && f.endsWith('.sock'));
      if (!name) throw new Error(`no sandbox-*.sock in ${dir}`);
      return path.join(dir, name);
    },
  };
}

function go(binary: string): Plugin {
  cachedAsAfterExec(binary, ['-h']); // Go's flag package prints the usage and exits
  return {
    name: 'Go reference',
    launch: (root, pluginDir) => ({
      command: binary,
      args: ['--host-root', root, '--plugin-dir', pluginDir, '--resource', PGPU, '--socket', 'go-reference.sock'],
      form: 'single executable',
    }),
    socket: (dir) => path.join(dir, 'go-reference.sock'),
  };
}

/** exec → the kubelet counts the GPUs allocatable; the plugin is left running. */
async function start(plugin: Plugin, root: string, pluginDir: string, kubelet: BenchKubelet) {
  const { command, args, env } = plugin.launch(root, pluginDir);
  const t = performance.now();
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'], ...(env ? { env } : {}) });
  await untilAllocatable(kubelet, GPUS);
  return { ms: performance.now() - t, child };
}

/** Stops a plugin and waits until the kubelet has seen its stream end (its devices unhealthy). */
async function stop(child: ChildProcess, kubelet: BenchKubelet): Promise<void> {
  await stopChild(child);
  await untilAllocatable(kubelet, 0);
}

interface PluginFigures {
  startMs: number;
  idleRssMb: number;
  rssAfterAllocateMb: number;
  allocateCalls: number;
  single: number[];
  concurrent: number[];
}

/** Idle RSS, then Allocate latency (5,000 calls in all), then the RSS after them. */
async function steadyState(
  plugin: Plugin,
  root: string,
  pluginDir: string,
  kubelet: BenchKubelet,
  ids: string[],
): Promise<Omit<PluginFigures, 'startMs'>> {
  const { child } = await start(plugin, root, pluginDir, kubelet);
  try {
    await sleep(IDLE_MS);
    const idleRssMb = rssMb(child.pid!);
    const { single, concurrent, calls } = await allocateLatency(plugin.socket(pluginDir), ids);
    const rssAfterAllocateMb = rssMb(child.pid!);
    return { idleRssMb, rssAfterAllocateMb, allocateCalls: calls, single, concurrent };
  } finally {
    await stop(child, kubelet);
  }
}

/** A plain hgx-h100-8 host tree with its 8 GPUs on vfio-pci (bound by the simulator, which then leaves). */
async function plainNode(base: string): Promise<string> {
  const simulated = path.join(base, 'vs-go-simulated');
  createNode(simulated, 'hgx-h100-8');
  const bound = await bind(
    openSimulatedHost(simulated),
    { selection: { all: true }, nvswitches: false, allowForeignGroupMembers: false, dryRun: false },
    { logger: silentLogger(), loadModules: false, modprobe: {}, unbindTimeoutMs: 10_000, deviceNodeTimeoutMs: 10_000 },
  );
  if (!bound.report?.ok) throw new Error('binding the simulated node failed');
  return plainHostTree(simulated, path.join(base, 'vs-go'));
}

/** The same Allocate calls on a bare server of hal's gRPC transport (floor-server.ts): the transport's own cost. */
async function transportFloor(base: string, ids: string[]) {
  const socket = path.join(base, 'floor.sock');
  const server = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(import.meta.dirname, 'floor-server.ts'), socket],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  try {
    await new Promise((resolve) => server.stdout!.once('data', resolve));
    return await allocateLatency(socket, ids);
  } finally {
    await stopChild(server);
  }
}

/**
 * The figures, ours beside the Go reference's and a bare Node.js process's. Without Go (or when the
 * Go build fails) ours is still held against bare Node.js, and a note says why Go is missing.
 */
export async function compareWithGo(base: string): Promise<{ results: BenchResult[]; notes: string[] }> {
  const reference = goReferenceBinary();
  const ourPlugin = ours();
  const goPlugin = 'binary' in reference ? go(reference.binary) : undefined;
  const notes = [`Ours runs as the ${productionForm('sandbox-device-plugin').form}.`];
  if ('why' in reference) notes.push(`Not compared with the Go reference: ${reference.why}`);
  else
    notes.push(
      'The Go reference lists the GPUs once at start; it has no health watch, no re-registration after a kubelet ' +
        'restart, no metrics server and no logs (packages/testbed/bench/go-reference/main.go).',
    );
  const root = await plainNode(base);
  const pluginDir = path.join(root, 'var/lib/kubelet/device-plugins');
  const kubelet = await startKubelet(root, pluginDir);
  notes.push(`Kubelet: ${kubelet.description}. Node: a plain hgx-h100-8 host tree, ${GPUS} GPUs on vfio-pci.`);
  try {
    // Starts alternate (bare Node.js, ours, Go, bare Node.js, …) so that the machine's load weighs on all alike.
    const starts = { ours: [] as number[], go: [] as number[], bare: [] as number[] };
    for (let i = 0; i < STARTS; i++) {
      starts.bare.push(await bareNode.firstLine());
      for (const [key, plugin] of [
        ['ours', ourPlugin],
        ['go', goPlugin],
      ] as const) {
        if (!plugin) continue;
        const { ms, child } = await start(plugin, root, pluginDir, kubelet);
        starts[key].push(ms);
        await stop(child, kubelet);
      }
    }
    const ids = readdirSync(path.join(root, 'dev/vfio')).filter((f) => /^\d+$/.test(f));
    const o = await steadyState(ourPlugin, root, pluginDir, kubelet, ids);
    const g = goPlugin && (await steadyState(goPlugin, root, pluginDir, kubelet, ids));
    const floor = await transportFloor(base, ids);
    const bareIdleRssMb = await bareNode.idleRssMb();
    /** The Go reference's figure as a reference, when there is one. */
    const vsGo = (figure: (f: Omit<PluginFigures, 'startMs'>) => number, target?: string): Reference[] =>
      g ? [{ name: 'Go reference', value: figure(g), by: 'ratio', ...(target ? { target } : {}) }] : [];
    const results = [
      ...compared(`exec → registered with the kubelet (median of ${STARTS})`, median(starts.ours), 'ms', [
        ...vsGo(() => median(starts.go), '≤ 3 ×'),
        { name: 'bare Node.js, exec → first line', value: median(starts.bare), by: 'difference' },
      ]),
      ...compared(`idle RSS, ${IDLE_MS / 1000} s after registering`, o.idleRssMb, 'MB', [
        ...vsGo((f) => f.idleRssMb),
        { name: 'bare Node.js', value: bareIdleRssMb, by: 'ratio' },
      ]),
      ...compared(`RSS after ${o.allocateCalls} Allocate calls`, o.rssAfterAllocateMb, 'MB', [
        ...vsGo((f) => f.rssAfterAllocateMb),
        { name: 'bare Node.js', value: bareIdleRssMb, by: 'ratio', target: '≤ 1.4 ×' },
      ]),
      ...compared(`Allocate, 1 caller: p50 (of ${o.single.length})`, median(o.single), 'ms', [
        ...vsGo((f) => median(f.single)),
      ]),
      ...compared(`Allocate, 16 concurrent callers: p50 (of ${o.concurrent.length})`, median(o.concurrent), 'ms', [
        ...vsGo((f) => median(f.concurrent), '≤ 2 ×'),
        { name: 'bare gRPC server of hal answering a constant', value: median(floor.concurrent), by: 'ratio' },
      ]),
      ...compared('Allocate, 16 concurrent callers: p99', quantile(o.concurrent, 0.99), 'ms', [
        ...vsGo((f) => quantile(f.concurrent, 0.99)),
      ]),
      {
        name: `bare Node.js: exec → first line of a script (median of ${STARTS})`,
        value: median(starts.bare),
        unit: 'ms',
      },
      {
        name: `bare Node.js: idle RSS, ${IDLE_MS / 1000} s after its start (median of 3)`,
        value: bareIdleRssMb,
        unit: 'MB',
      },
    ];
    return { results, notes };
  } finally {
    await kubelet.stop();
  }
}
