// cc-manager benchmark on simulated nodes with the fake API server and the real binary: time from a
// change of the nvidia.com/cc.mode label to nvidia.com/cc.mode.state written, for 1 and 8 GPUs, with
// the fake gpu-admin-tools as slow as hardware (start 150 ms, knob write 150 ms, reset + boot 1700 ms),
// against the sequential one-by-one time (--max-parallel 1). Writes bench/out/cc-manager.json.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import {
  createNode,
  installFakeTools,
  nodeLabels,
  openSimulatedHost,
  setLabels,
  startApiServer,
  writeToolSettings,
} from '@gpucc/sim';
import { bind } from '@gpucc/vfio-manager';
import { type BenchResult, reportBench, sized } from '../../../bench/report.js';
import { silentLogger } from '../src/fixtures/logs.js';
import { repositoryBinaries } from '../src/suite/operands.js';

const BIN = repositoryBinaries()['cc-manager'];
const LATENCY = { startMs: 150, setMs: 150, resetMs: 1700 };
const REPEAT = 3;
const base = mkdtempSync(path.join(process.platform === 'linux' ? '/dev/shm' : os.tmpdir(), 'gpucc-cc-bench-'));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Sample {
  totalMs: number;
  toolMs: number;
  watchMs: number;
  phases: Record<string, number>;
}

async function scenario(name: string, gpus: number, maxParallel: number, repeat: number): Promise<Sample[]> {
  const root = path.join(base, name);
  createNode(root, 'scale', { gpus, functionsPerCard: 1 }, installFakeTools);
  const logger = silentLogger();
  await bind(
    openSimulatedHost(root),
    { selection: { all: true }, nvswitches: false, allowForeignGroupMembers: false, dryRun: false },
    { logger, loadModules: false, modprobe: {}, unbindTimeoutMs: 10_000, deviceNodeTimeoutMs: 10_000 },
  );
  writeToolSettings(root, LATENCY);
  setLabels(root, { 'nvidia.com/cc.mode': 'off' });
  const server = await startApiServer({ root });
  const child: ChildProcess = spawn(
    process.execPath,
    [
      BIN,
      'run',
      '--host-root',
      root,
      '--kubeconfig',
      server.kubeconfigPath,
      '--node-name',
      server.nodeName,
      '--metrics-address',
      '127.0.0.1:0',
      '--log-format',
      'json',
      '--max-parallel',
      String(maxParallel),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const lines: Array<Record<string, unknown>> = [];
  createInterface({ input: child.stdout! }).on('line', (line) => lines.push(JSON.parse(line)));
  const until = async (test: () => boolean, timeoutMs = 120_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!test()) {
      if (Date.now() > deadline) throw new Error(`${name}: timed out; last log ${JSON.stringify(lines.at(-1))}`);
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  const samples: Sample[] = [];
  try {
    await until(() => lines.some((l) => l.event === 'reconcile.done'));
    let mode = 'off';
    for (let i = 0; i < repeat; i++) {
      mode = mode === 'on' ? 'off' : 'on';
      const since = lines.length;
      const t0 = Date.now();
      setLabels(root, { 'nvidia.com/cc.mode': mode }); // what `gpucc-sim label` does from another process
      await until(() => nodeLabels(root)['nvidia.com/cc.mode.state'] === mode);
      const totalMs = Date.now() - t0;
      await until(() => lines.slice(since).some((l) => l.event === 'reconcile.done'));
      const done = lines.slice(since).find((l) => l.event === 'cc.switch.done');
      const seen = lines.slice(since).find((l) => l.event === 'cc.label.changed');
      if (!done || !seen) throw new Error(`${name}: the switch did not log its phases`);
      const phases = Object.fromEntries(
        (done.phases as Array<{ phase: string; ms: number }>).map((p) => [p.phase, p.ms]),
      );
      samples.push({ totalMs, toolMs: done.toolMs as number, watchMs: Date.parse(seen.time as string) - t0, phases });
    }
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    await server.close();
  }
  return samples;
}

/** Wall time of `count` fake-tool calls started at once (`--help`: start-up only), to see what CPU contention costs. */
async function toolStarts(count: number): Promise<number> {
  const root = path.join(base, `starts-${count}`);
  createNode(root, 'scale', { gpus: 1, functionsPerCard: 1 }, installFakeTools);
  writeToolSettings(root, LATENCY);
  const tool = path.join(root, 'opt/gpu-admin-tools/nvidia_gpu_tools.py');
  const walls: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    await Promise.all(
      Array.from(
        { length: count },
        () =>
          new Promise((resolve) =>
            spawn(process.execPath, [tool, '--help'], { stdio: 'ignore' }).once('exit', resolve),
          ),
      ),
    );
    walls.push(performance.now() - t);
  }
  return median(walls);
}

const results: BenchResult[] = [];
try {
  const one = await scenario('gpus-1', 1, 16, REPEAT);
  const eight = await scenario('gpus-8', 8, 16, REPEAT);
  const sequential = await scenario('gpus-8-sequential', 8, 1, 1);
  const m = (xs: Sample[], key: 'totalMs' | 'toolMs' | 'watchMs') => median(xs.map((s) => s[key]));
  const overhead = (xs: Sample[]) => median(xs.map((s) => s.totalMs - s.toolMs));
  const sizes: Array<[number, Sample[]]> = [
    [1, one],
    [8, eight],
  ];
  for (const [gpus, xs] of sizes) {
    results.push(
      sized(`label change → cc.mode.state, in parallel (median of ${REPEAT})`, gpus, m(xs, 'totalMs'), 'ms'),
    );
  }
  results.push(
    { name: '  8 GPUs / 1 GPU', value: m(eight, 'totalMs') / m(one, 'totalMs'), unit: '×', target: '≤ 1.2' },
    sized('label change → cc.mode.state, one by one (--max-parallel 1)', 8, m(sequential, 'totalMs'), 'ms'),
    { name: '  parallel / one by one, 8 GPUs', value: m(eight, 'totalMs') / m(sequential, 'totalMs'), unit: '×' },
  );
  for (const [gpus, xs] of sizes) {
    results.push(sized('  tool phases (query, set + reset, verify)', gpus, m(xs, 'toolMs'), 'ms'));
  }
  for (const [gpus, xs] of sizes) {
    results.push(sized('beyond the tool’s own time', gpus, overhead(xs), 'ms', '≤ 200 ms'));
  }
  for (const [gpus, xs] of sizes) {
    results.push(sized('  of which the fake API server’s watch delivery', gpus, m(xs, 'watchMs'), 'ms'));
  }
  for (const phase of ['query', 'switch', 'verify']) {
    for (const [gpus, xs] of sizes) {
      results.push(sized(`  phase ${phase}`, gpus, median(xs.map((s) => s.phases[phase] ?? 0)), 'ms'));
    }
  }
  // The fake tool is a Node process (about 0.25 s of CPU to start): on a machine with fewer CPUs than
  // devices, starting 8 at once is what makes 8 slower than 1, not the resets (they overlap).
  const start1 = await toolStarts(1);
  const start8 = await toolStarts(8);
  results.push(
    sized('fake tool start-up, one call per GPU at once', 1, start1, 'ms'),
    sized('fake tool start-up, one call per GPU at once', 8, start8, 'ms'),
    {
      name: '  8 GPUs / 1 GPU without that start-up contention (derived)',
      value: (m(eight, 'totalMs') - (start8 - start1)) / m(one, 'totalMs'),
      unit: '×',
    },
  );
} finally {
  rmSync(base, { recursive: true, force: true });
}

reportBench('cc-manager', 'cc-manager benchmarks', results, {
  detail: `fake tool: start ${LATENCY.startMs} ms, set ${LATENCY.setMs} ms, reset ${LATENCY.resetMs} ms`,
  notes: [
    'Measured at 1 and 8 GPUs, not at 64 or 256. Each GPU’s switch runs the fake gpu-admin-tools three times ' +
      '(query, set + reset, verify), each a Node process of about 0.25 s of CPU, and the reset sleeps 1.7 s as ' +
      'on hardware. At 64 GPUs that is about 48 s of CPU (24 s on 2 CPUs) of tool start-ups per switch and ' +
      'about 2.5 min for the one-by-one run; at 256 GPUs about 3 min of CPU (1.5 min on 2 CPUs) per switch and ' +
      'about 10 min one by one: several times the whole `pnpm bench`, for a time that is the fake tool’s, not ' +
      'gpucc’s.',
  ],
  extra: { latency: LATENCY },
});
