// Start and footprint of the daemons and one-shot commands against a bare Node.js process measured
// in the same run (measure.ts; the starts in pairs, one of ours then one bare), on a simulated hgx-h100-8 node (8 GPUs and 4 NVSwitches, all on
// vfio-pci): `kata-manager run`, `vfio-manager run` and `cc-manager run` from exec to their first
// /readyz 200 and their idle RSS; `vfio-manager plan --all`, `kata-manager generate` and
// `cc-manager status` from exec to exit. All three run in their production form on a plain copy of
// the node (no simulator in the process); cc-manager is given the simulated node's fake gpu-admin-tools
// (`--gpu-admin-tools`), which answers for the same devices, and the simulator's API server.
// (sandbox-device-plugin: its own benchmark.)
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createNode, GPU_TOOLS_PATH, installFakeTools, openSimulatedHost, setLabels, startApiServer } from '@gpucc/sim';
import { bind } from '@gpucc/vfio-manager';
import { type BenchResult, compared, reportBench } from '../../../bench/report.js';
import { freePort } from '../src/fixtures/index.js';
import { silentLogger } from '../src/fixtures/logs.js';
import type { Operand } from '../src/suite/operands.js';
import {
  asDaemon,
  bareNode,
  execToExit,
  IDLE_MS,
  type Launch,
  median,
  paired,
  plainHostTree,
  productionForm,
  rssMb,
  sleep,
  stopChild,
} from './measure.js';

const STARTS = 5;
const ONE_SHOTS = 7;
const base = mkdtempSync(path.join(process.platform === 'linux' ? '/dev/shm' : os.tmpdir(), 'gpucc-footprint-'));
const results: BenchResult[] = [];
const notes: string[] = [];

/** Resolves when GET /readyz answers 200, asking again as soon as an answer (or a refusal) comes. */
async function untilReady(port: number, child: ChildProcess, timeoutMs = 20_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  const ask = () =>
    new Promise<number>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/readyz', agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.once('error', () => resolve(0));
    });
  while ((await ask()) !== 200) {
    if (child.exitCode !== null) throw new Error(`${child.spawnfile} exited ${child.exitCode} before ready`);
    if (performance.now() > deadline) throw new Error(`${child.spawnfile}: /readyz not 200 in time`);
    await sleep(2);
  }
}

/** One start of a daemon: exec → /readyz 200; with `rss`, also its RSS IDLE_MS after ready. */
async function daemonStart(launch: Launch, args: string[], rss?: (mb: number) => void): Promise<number> {
  const port = await freePort();
  const t = performance.now();
  const child = spawn(
    launch.command,
    [...launch.args, ...args, '--metrics-address', `127.0.0.1:${port}`, '--log-level', 'warn'],
    { stdio: ['ignore', 'ignore', 'inherit'], ...(launch.env ? { env: launch.env } : {}) },
  );
  try {
    await untilReady(port, child);
    const ms = performance.now() - t;
    if (rss) {
      await sleep(IDLE_MS);
      rss(rssMb(child.pid!));
    }
    return ms;
  } finally {
    await stopChild(child);
  }
}

const form = (operand: Operand) => {
  const launch = productionForm(operand);
  notes.push(`${operand} runs as the ${launch.form}.`);
  return launch;
};

try {
  const simulated = path.join(base, 'hgx');
  createNode(simulated, 'hgx-h100-8', {}, installFakeTools);
  const bound = await bind(
    openSimulatedHost(simulated),
    { selection: { all: true }, nvswitches: true, allowForeignGroupMembers: false, dryRun: false },
    { logger: silentLogger(), loadModules: false, modprobe: {}, unbindTimeoutMs: 10_000, deviceNodeTimeoutMs: 10_000 },
  );
  if (!bound.report?.ok) throw new Error('binding the simulated node failed');
  const plain = plainHostTree(simulated, path.join(base, 'plain'));
  setLabels(simulated, { 'nvidia.com/cc.mode': 'off' });
  const server = await startApiServer({ root: simulated });

  const bareIdleRssMb = await bareNode.idleRssMb();
  const bareStarts: number[] = [];
  const bareExits: number[] = [];
  const vfio = form('vfio-manager');
  const kata = form('kata-manager');
  const cc = form('cc-manager');
  const ccTool = ['--gpu-admin-tools', path.join(simulated, GPU_TOOLS_PATH)];
  notes.push(
    'cc-manager reads the CC mode through the simulator’s fake gpu-admin-tools, each call a Node.js process: ' +
      'its start and status include those calls, as on a real node they include gpu-admin-tools’ own.',
  );
  const daemons: Array<[string, Launch, string[]]> = [
    ['kata-manager run', asDaemon(kata), ['run', '--host-root', plain]],
    ['vfio-manager run', asDaemon(vfio), ['run', '--host-root', plain]],
    [
      'cc-manager run',
      asDaemon(cc),
      ['run', '--host-root', plain, ...ccTool, '--kubeconfig', server.kubeconfigPath, '--node-name', server.nodeName],
    ],
  ];
  try {
    for (const [name, launch, args] of daemons) {
      const ready = await paired(STARTS, () => daemonStart(launch, args), bareNode.firstLine);
      bareStarts.push(ready.bare);
      let idleRssMb = 0;
      await daemonStart(launch, args, (mb) => {
        idleRssMb = mb;
      });
      results.push(
        ...compared(`${name}: exec → /readyz 200 (median of ${STARTS})`, ready.ours, 'ms', [
          { name: 'bare Node.js, exec → first line', value: ready.bare, by: 'difference', target: '≤ 150 ms' },
        ]),
        ...compared(`${name}: idle RSS, ${IDLE_MS / 1000} s after ready`, idleRssMb, 'MB', [
          { name: 'bare Node.js', value: bareIdleRssMb, by: 'ratio', target: '≤ 1.4 ×' },
        ]),
      );
    }
  } finally {
    await server.close();
  }
  const oneShots: Array<[string, Launch, string[]]> = [
    ['vfio-manager plan --all', vfio, ['plan', '--all', '--host-root', plain]],
    ['kata-manager generate', kata, ['generate', '--host-root', plain, '--log-level', 'warn']],
    ['cc-manager status', cc, ['status', '--host-root', plain, ...ccTool, '--log-level', 'warn']],
  ];
  for (const [name, launch, args] of oneShots) {
    const wall = await paired(ONE_SHOTS, () => execToExit(launch.command, [...launch.args, ...args]), bareNode.exit);
    bareExits.push(wall.bare);
    results.push(
      ...compared(`${name}: exec → exit (median of ${ONE_SHOTS})`, wall.ours, 'ms', [
        { name: 'bare Node.js, exec → exit', value: wall.bare, by: 'difference', target: '≤ 150 ms' },
      ]),
    );
  }
  // What each of cc-manager's tool calls costs here (one per GPU and NVSwitch at start, 16 at once at
  // most): its start and status above include them, as on a real node they include gpu-admin-tools'.
  const tool = await paired(
    ONE_SHOTS,
    () => execToExit(path.join(simulated, GPU_TOOLS_PATH), ['--gpu-bdf=0000:13:00.0', '--query-cc-mode']),
    bareNode.exit,
  );
  results.push(
    ...compared(
      `simulated gpu-admin-tools --query-cc-mode, one GPU: exec → exit (median of ${ONE_SHOTS})`,
      tool.ours,
      'ms',
      [{ name: 'bare Node.js, exec → exit', value: tool.bare, by: 'difference' }],
    ),
  );
  results.push(
    {
      name: 'bare Node.js: exec → exit of `node -e 0` (median of the pairs above)',
      value: median(bareExits),
      unit: 'ms',
    },
    {
      name: 'bare Node.js: exec → first line of a script (median of the pairs above)',
      value: median(bareStarts),
      unit: 'ms',
    },
    {
      name: `bare Node.js: idle RSS, ${IDLE_MS / 1000} s after its start (median of 3)`,
      value: bareIdleRssMb,
      unit: 'MB',
    },
  );
} finally {
  rmSync(base, { recursive: true, force: true });
}

reportBench('footprint', 'start and footprint against a bare Node.js process', results, { notes });
