// The suite against real Kubernetes peers and against the fakes, side by side in one run (issue 14):
// the whole suite on a simulated hgx-h100-8 node with the CC tools at hardware latency, its API
// server and kubelet either gpucc-sim's fakes or the real kube-apiserver + etcd and the kubelet's own
// device manager (scripts/k8s.sh; measured only where they are built, else the report says so):
//   label cc.mode=on → cc.mode.state=on (8 GPUs and 4 NVSwitches switched), and
//   kubelet restart → both resources allocatable again (the device plugin re-registered), median of 10.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type BenchResult, compared, reportBench } from '../../../bench/report.js';
import { realPeers, until } from '../src/real/index.js';
import { repositoryBinaries, Suite } from '../src/suite/index.js';
import { median } from './measure.js';

const REPOSITORY = path.resolve(import.meta.dirname, '../../..');
const MODE = 'nvidia.com/cc.mode';
const STATE = 'nvidia.com/cc.mode.state';
const RESTARTS = 10;
/** How often the peers are asked while a figure is timed: its resolution. */
const POLL_MS = 2;
// Real hardware: tool start 150 ms, a set 150 ms, a reset 1.7 s per call (as `npm run demo -- --slow`).
const HARDWARE = { startMs: 150, setMs: 150, resetMs: 1700 };
const base = mkdtempSync(path.join(process.platform === 'linux' ? '/dev/shm' : os.tmpdir(), 'gpucc-peers-bench-'));

interface PeerFigures {
  labelToStateMs: number;
  reregisterMs: number;
}

/** The built kube-apiserver, etcd and device-manager harness, or why there are none. */
function realComponents(): { bin: string } | { why: string } {
  try {
    const script = path.join(REPOSITORY, 'scripts/k8s.sh');
    return {
      bin: execFileSync('sh', [script, 'path'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim(),
    };
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    return { why: stderr || 'scripts/k8s.sh path failed' };
  }
}

async function measure(name: string, peers?: Parameters<typeof Suite.start>[0]['peers']): Promise<PeerFigures> {
  const suite = await Suite.start({
    root: path.join(base, name),
    profile: 'hgx-h100-8',
    binaries: repositoryBinaries(),
    initialLabels: { [MODE]: 'off' },
    toolLatency: HARDWARE,
    ...(peers ? { peers } : {}),
  });
  try {
    await suite.converged('off', `${name}: the node converged on off`, 120_000);
    const started = performance.now();
    await suite.label({ [MODE]: 'on' });
    await until(`${name}: ${STATE}=on`, async () => (await suite.labels())[STATE] === 'on', 120_000, POLL_MS);
    const labelToStateMs = performance.now() - started;
    await suite.converged('on', `${name}: the node converged on on`, 60_000);

    const allocatable = async () => {
      const view = await suite.kubelet();
      return (
        view.resources['nvidia.com/pgpu']?.allocatable === 8 && view.resources['nvidia.com/nvswitch']?.allocatable === 4
      );
    };
    const times: number[] = [];
    for (let i = 0; i < RESTARTS; i++) {
      const t = performance.now();
      await suite.restartKubelet();
      await until(`${name}: re-registered after restart ${i + 1}`, allocatable, 30_000, POLL_MS);
      times.push(performance.now() - t);
    }
    return { labelToStateMs, reregisterMs: median(times) };
  } finally {
    await suite.stop();
  }
}

const results: BenchResult[] = [];
const notes = [
  'The whole suite (the four operands as processes) on a simulated hgx-h100-8 node, CC tools at hardware latency; only the API server and the kubelet differ.',
];
try {
  const fake = await measure('fake');
  const real = realComponents();
  if ('why' in real) {
    notes.push(`Real peers not measured: ${real.why} (build them with sh scripts/k8s.sh build).`);
    results.push(
      { name: 'label cc.mode=on → cc.mode.state=on, fake API server', value: fake.labelToStateMs, unit: 'ms' },
      {
        name: `kubelet restart → re-registered, fake kubelet (median of ${RESTARTS})`,
        value: fake.reregisterMs,
        unit: 'ms',
      },
    );
  } else {
    const measured = await measure('real', realPeers(real.bin));
    notes.push('Real peers: kube-apiserver + etcd of scripts/k8s.sh, and the kubelet’s device manager in its harness.');
    results.push(
      ...compared(
        'label cc.mode=on → cc.mode.state=on, real API server',
        measured.labelToStateMs,
        'ms',
        [{ name: 'fake API server', value: fake.labelToStateMs, by: 'ratio' }],
        'real',
      ),
      ...compared(
        `kubelet restart → re-registered, the kubelet’s real device manager (median of ${RESTARTS})`,
        measured.reregisterMs,
        'ms',
        [{ name: 'fake kubelet', value: fake.reregisterMs, by: 'ratio' }],
        'real',
      ),
    );
  }
} finally {
  rmSync(base, { recursive: true, force: true });
}

reportBench('peers', 'The suite against real Kubernetes peers and against the fakes', results, { notes });
