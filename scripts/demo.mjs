#!/usr/bin/env node
// The whole gpucc suite on a simulated node: a fake API server and kubelet, the four operands as
// processes, and the scenario an operator lives through (bind, CDI, advertise, cc.mode=on, allocate,
// ppcie, off), with a timeline. Exit 0 when every step passed. With --real-k8s the API server and the
// kubelet are the real ones of scripts/k8s.sh (kube-apiserver + etcd, the kubelet's device manager).
// Usage: node scripts/demo.mjs [--keep] [--profile NAME] [--dir DIR] [--slow] [--real-k8s]   (npm run demo sets up first)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { formatScenario, formatTimeline, repositoryBinaries, runScenario, Suite } from '@gpucc/testbed';
import { realPeers } from '@gpucc/testbed/real';

const USAGE = `usage: npm run demo -- [--keep] [--profile NAME] [--dir DIR] [--slow] [--real-k8s]
  --keep          leave the suite running after the scenario (Ctrl-C stops it and removes the node)
  --profile NAME  simulated node profile (default hgx-h100-8; see gpucc-sim profiles)
  --dir DIR       lay the node out in DIR (new or empty) and keep it afterwards
  --slow          fake CC tools as slow as hardware (reset 1.7 s) instead of 10x faster
  --real-k8s      the real kube-apiserver + etcd and the kubelet's device manager instead of the fakes
                  (built once by: sh scripts/k8s.sh build)`;

let options;
try {
  options = parseArgs({
    options: {
      keep: { type: 'boolean', default: false },
      profile: { type: 'string', default: 'hgx-h100-8' },
      dir: { type: 'string' },
      slow: { type: 'boolean', default: false },
      'real-k8s': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }).values;
} catch (error) {
  process.stderr.write(`${error.message}\n${USAGE}\n`);
  process.exit(2);
}
if (options.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

const k8sBin = options['real-k8s'] ? realComponents() : undefined;
const binaries = repositoryBinaries();

const tmpBase = process.platform === 'linux' ? '/dev/shm' : os.tmpdir();
const base = options.dir ? undefined : mkdtempSync(path.join(tmpBase, 'gpucc-demo-'));
const root = options.dir ? path.resolve(options.dir) : path.join(base, 'node');
const print = (entry) => {
  process.stdout.write(`${formatTimeline([entry])}\n`);
};

const around = k8sBin ? ', the real kube-apiserver and kubelet device manager around it' : '';
process.stdout.write(`gpucc demo: the whole suite on a simulated ${options.profile} node${around}\n\n`);
let suite;
let passed = false;
let result;
// Ctrl-C or SIGTERM before the end: stop what the suite started, as at the end. Its processes run in
// their own process groups (as containers do), so the terminal's signal does not reach them.
const interruptions = new Map(['SIGINT', 'SIGTERM'].map((signal) => [signal, () => void interrupted(signal)]));
for (const [signal, handler] of interruptions) process.once(signal, handler);
try {
  suite = await Suite.start({
    root,
    profile: options.profile,
    binaries,
    initialLabels: { 'nvidia.com/cc.mode': 'off' },
    // Real hardware: start 150, set 150, reset 1700 ms per tool call.
    toolLatency: options.slow ? { startMs: 150, setMs: 150, resetMs: 1700 } : { startMs: 15, setMs: 15, resetMs: 170 },
    onEntry: print,
    ...(k8sBin ? { peers: realPeers(k8sBin) } : {}),
  });
  result = await runScenario(suite);
  passed = result.ok;
  if (options.keep && passed) {
    for (const [signal, handler] of interruptions) process.off(signal, handler);
    suite.settle();
    await keepRunning(suite);
  }
} catch (error) {
  process.stdout.write(`\n${error.code ?? 'error'}: ${error.message}\n`);
  if (error.hint) process.stdout.write(`hint: ${error.hint}\n`);
} finally {
  const exits = suite ? await suite.stop() : {};
  if (result) process.stdout.write(`\nsteps:\n${formatScenario(result)}\n`);
  const unclean = Object.entries(exits).filter(([, e]) => e.code !== 0);
  for (const [operand, e] of unclean)
    process.stdout.write(`  FAIL ${operand} exited ${e.signal ?? e.code} on SIGTERM\n`);
  if (unclean.length) passed = false;
  if (base) rmSync(base, { recursive: true, force: true });
  else process.stdout.write(`the node and its logs stay in ${root} (logs: .gpucc-sim/suite/)\n`);
}
process.stdout.write(`\ndemo ${passed ? 'passed' : 'FAILED'}\n`);
process.exitCode = passed ? 0 : 1;

async function interrupted(signal) {
  process.stdout.write(`\n${signal}: stopping the suite\n`);
  await suite?.stop().catch(() => undefined);
  if (base) rmSync(base, { recursive: true, force: true });
  process.stdout.write('demo interrupted\n');
  process.exit(128 + os.constants.signals[signal]);
}

/** The bin dir of the real components (scripts/k8s.sh), or exit 2 saying how to build them. */
function realComponents() {
  try {
    const script = path.resolve(import.meta.dirname, 'k8s.sh');
    return execFileSync('sh', [script, 'path'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    process.stderr.write(
      "demo: --real-k8s needs kube-apiserver, etcd and the kubelet's device manager built from source: sh scripts/k8s.sh build (needs Go; about 20 min once, then cached)\n",
    );
    process.exit(2);
  }
}

async function keepRunning(s) {
  const sim = `node ${path.relative(process.cwd(), binaries['gpucc-sim'])}`;
  process.stdout.write(k8sBin ? realInstructions(s, sim) : fakeInstructions(s, sim));
  await new Promise((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  process.stdout.write('\nstopping the suite\n');
}

function fakeInstructions(s, sim) {
  return `
The suite keeps running on ${s.root} until Ctrl-C. From another shell:
  ${sim} label ${s.root} nvidia.com/cc.mode=on            # switch again (or ppcie, off, devtools)
  ${sim} label ${s.root}                                  # the node's labels
  ${sim} events ${s.root}                                 # the Events cc-manager posted
  ${sim} kubelet-status ${s.root}                         # what the kubelet was told
  ${sim} kubelet-allocate ${s.root} nvidia.com/pgpu 1     # a pod asking for 1 GPU (the rule of the mode: sandbox-device-plugin list)
  ${sim} kubelet-release ${s.root} nvidia.com/pgpu        # the pod ends: its devices go back
  ${sim} inspect ${s.root}                                # drivers, groups, device nodes
  curl -s ${s.metricsUrl('cc-manager')}/metrics            # cc-manager (also /healthz, /readyz)
  curl -s ${s.metricsUrl('vfio-manager')}/metrics          # vfio-manager
  curl -s ${s.metricsUrl('kata-manager')}/metrics          # kata-manager
  curl -s ${s.metricsUrl('sandbox-device-plugin')}/metrics # sandbox-device-plugin
  logs: ${path.join(s.root, '.gpucc-sim/suite')}/*.log

`;
}

function realInstructions(s, sim) {
  const kubectl = `kubectl --kubeconfig ${s.kubeconfig()}`;
  const node = s.nodeName;
  return `
The suite keeps running on ${s.root} until Ctrl-C. From another shell (kubectl 1.x):
  ${kubectl} label node ${node} nvidia.com/cc.mode=on --overwrite   # switch again (or ppcie, off, devtools)
  ${kubectl} get node ${node} --show-labels                          # the node's labels
  ${kubectl} get events --field-selector involvedObject.name=${node} # the Events cc-manager posted
  ${sim} inspect ${s.root}                                # drivers, groups, device nodes
  curl -s ${s.metricsUrl('cc-manager')}/metrics            # cc-manager (also /healthz, /readyz)
  curl -s ${s.metricsUrl('sandbox-device-plugin')}/metrics # sandbox-device-plugin
  logs: ${path.join(s.root, '.gpucc-sim/suite')}/*.log (kube-apiserver and etcd: k8s/*.log)
The kubelet's device manager takes its requests from the demo itself (its harness reads them on stdin),
so pods are admitted only by the scenario.

`;
}
