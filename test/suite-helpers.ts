import path from 'node:path';
import { formatTimeline, Suite, type SuiteOptions } from '@gpucc/sim/suite';
import { afterEach } from 'vitest';
import { tempDir } from '../packages/sim/test/helpers.js';

const repo = path.resolve(import.meta.dirname, '..');
const bin = (pkg: string, name: string) => path.join(repo, 'packages', pkg, 'bin', `${name}.mjs`);

/** The bin scripts the suite runs (they load the bundles of `pnpm run build`). */
export const BINARIES: SuiteOptions['binaries'] = {
  'gpucc-sim': bin('sim', 'gpucc-sim'),
  'cc-manager': bin('cc-manager', 'cc-manager'),
  'vfio-manager': bin('vfio-manager', 'vfio-manager'),
  'kata-manager': bin('kata-manager', 'kata-manager'),
  'sandbox-device-plugin': bin('sandbox-device-plugin', 'sandbox-device-plugin'),
};

const running: Suite[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
});

/** The whole suite on a fresh simulated hgx-h100-8 node in mode off; stopped after the test. */
export async function startSuite(options: Partial<SuiteOptions> = {}): Promise<Suite> {
  const suite = await Suite.start({
    root: path.join(tempDir('gpucc-suite-'), 'node'),
    binaries: BINARIES,
    initialLabels: { 'nvidia.com/cc.mode': 'off' },
    toolLatency: { startMs: 15, setMs: 15, resetMs: 170 },
    restartDelayMs: 100,
    // GPUCC_SUITE_TRACE=1 prints the timeline as it happens (the logs stay in .gpucc-sim/suite/).
    ...(process.env.GPUCC_SUITE_TRACE ? { onEntry: (e) => process.stdout.write(`${formatTimeline([e])}\n`) } : {}),
    ...options,
  });
  running.push(suite);
  return suite;
}

/** A small seeded generator (mulberry32): a failing run names its seed, and GPUCC_SUITE_SEED replays it. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const SEED = seedFrom(process.env.GPUCC_SUITE_SEED);

/** GPUCC_SUITE_SEED replays a run; anything but a non-negative integer is refused, not read as 0. */
function seedFrom(value: string | undefined): number {
  if (value === undefined) return Date.now() % 1_000_000;
  if (!/^\d+$/.test(value))
    throw new Error(`GPUCC_SUITE_SEED must be a non-negative integer, not ${JSON.stringify(value)}`);
  return Number(value);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
