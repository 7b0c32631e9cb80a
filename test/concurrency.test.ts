// Issue 12's concurrency suite: two vfio-manager writers at once (the run daemon and a command, or
// two commands) on a simulated hgx-h100-8 node, one of them killed with SIGKILL at a random point of its
// sysfs writes (the simulated kernel's kill-after-writes: right after a write completes, as a real
// kernel's write either happened or not; a signal sent at a random time could stop the simulated
// kernel itself half-way through a write until it runs as its own process, issue 12's simulator part).
// After each run, one `unbind --all --nvswitches --restore` must return every device to its original
// driver with no driver_override left, no NVIDIA unbind lock held and no host lock left behind.
// GPUCC_SUITE_SEED replays a run (the seed is in every failure message); GPUCC_CONCURRENCY_RUNS sets
// how many (default 20).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { discoverPci, HostRoot } from '@gpucc/hal';
import { clearFaults, injectFault } from '@gpucc/sim';
import { seededRandom } from '@gpucc/testbed/fixtures';
import { SEED } from '@gpucc/testbed/suite-fixtures';
import { simNode } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';

const exec = promisify(execFile);
const VFIO = path.resolve(import.meta.dirname, '../packages/vfio-manager/bin/vfio-manager.mjs');
const RUNS = Number(process.env.GPUCC_CONCURRENCY_RUNS ?? 20);
const NVSWITCHES = ['--nvswitches'];

type Writer = { name: string; args: string[] };
const BIND: Writer = { name: 'bind', args: ['bind', '--all', ...NVSWITCHES] };
const RESTORE: Writer = { name: 'unbind --restore', args: ['unbind', '--all', ...NVSWITCHES, '--restore'] };
const DAEMON: Writer = {
  name: 'run',
  args: ['run', ...NVSWITCHES, '--metrics-address', '127.0.0.1:0', '--resync-interval', '200', '--log-level', 'warn'],
};
const DAEMON_NONE: Writer = { name: 'run --desired none', args: [...DAEMON.args, '--desired', 'none'] };
/** The pairs of writers run at once. */
const PAIRS: Array<[Writer, Writer]> = [
  [BIND, RESTORE],
  [RESTORE, BIND],
  [DAEMON, RESTORE],
  [DAEMON_NONE, BIND],
  [BIND, BIND],
];

function start(root: string, writer: Writer): { child: ChildProcess; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [VFIO, ...writer.args, '--host-root', root], { stdio: 'ignore' });
  return { child, exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
}

async function vfio(root: string, args: string[]) {
  try {
    const { stdout, stderr } = await exec(process.execPath, [VFIO, ...args, '--host-root', root], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Every NVIDIA function's driver and override, and each GPU's unbind lock. */
function snapshot(root: string) {
  const devices = discoverPci(new HostRoot(root)).devices.filter((d) => d.vendor === 0x10de);
  const lock = (a: string) => {
    const file = path.join(root, 'proc/driver/nvidia/gpus', a, 'unbindLock');
    return existsSync(file) ? readFileSync(file, 'utf8').trim() : null;
  };
  return Object.fromEntries(
    devices.map((d) => [
      d.address,
      { driver: d.driver ?? null, override: d.driverOverride ?? null, lock: lock(d.address) },
    ]),
  );
}

describe('two vfio-manager writers with kill -9 at random moments', () => {
  it(`leave nothing that unbind --all --nvswitches --restore cannot put back (${RUNS} runs, seed ${SEED})`, async () => {
    const random = seededRandom(SEED);
    const outcomes: string[] = [];
    for (let run = 0; run < RUNS; run++) {
      const [first, second] = PAIRS[run % PAIRS.length]!;
      // The simulated kernel SIGKILLs whichever writer first completes its N-th sysfs write: before
      // a group, in the middle of one, or never (N beyond both), at a random point of the sequence.
      const killAtWrite = 1 + Math.floor(random() * 48);
      const { root } = simNode('hgx-h100-8');
      const original = snapshot(root);
      // Every other run starts bound, so that a restore has work to be killed in.
      const bound = Math.floor(run / PAIRS.length) % 2 === 1;
      if (bound) expect((await vfio(root, BIND.args)).code).toBe(0);
      await injectFault(root, { kind: 'kill-after-writes', afterWrites: killAtWrite });
      const writers = [start(root, first), start(root, second)];
      // A daemon never ends by itself: it is stopped (SIGTERM: the group in flight finishes) once the
      // command beside it has ended, if the kill did not end it first.
      const codes = await Promise.all(
        writers.map(async (w, i) => {
          const other = writers[1 - i]!;
          if ([first, second][i] === DAEMON || [first, second][i] === DAEMON_NONE) {
            await Promise.race([w.exited, other.exited]);
            w.child.kill('SIGTERM');
          }
          return w.exited;
        }),
      );
      const killed = codes.map((code, i) => (code === null ? [first, second][i]!.name : undefined)).filter(Boolean);
      await clearFaults(root);
      const final = await vfio(root, ['unbind', '--all', ...NVSWITCHES, '--restore']);
      const where = `run ${run} (seed ${SEED}, ${bound ? 'bound' : 'fresh'} node): ${first.name} beside ${second.name}, kill at write ${killAtWrite}`;
      outcomes.push(
        `${where}: killed ${killed.join(', ') || 'none'}; exit codes ${codes.map((c) => c ?? 'SIGKILL').join(', ')}; final restore ${final.code}`,
      );
      if (process.env.GPUCC_CONCURRENCY_REPORT) process.stdout.write(`${outcomes.at(-1)} (${root})\n`);
      expect(final.code, `${where}\n${final.stdout}${final.stderr}`).toBe(0);
      expect(snapshot(root), where).toEqual(original);
      expect(existsSync(path.join(root, 'var/lib/gpucc/vfio-manager.lock')), where).toBe(false);
    }
  }, 240_000);
});
