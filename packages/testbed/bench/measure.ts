// What several benchmarks measure the same way: statistics, a process's resident memory, the binary
// in its production form, a bare Node.js process (the floor every figure of ours is held against),
// and Allocate latency on a device plugin's socket.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { DevicePluginClient } from '@gpucc/sim';
import { DAEMON_NODE_OPTIONS } from '../../../scripts/bundle.mjs';
import { type Operand, repositoryBinaries } from '../src/suite/operands.js';

export const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
export const quantile = (xs: number[], q: number) => sorted(xs)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;
export const median = (xs: number[]) => quantile(xs, 0.5);
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resident memory of a live process, in MB (VmRSS of /proc/<pid>/status). */
export function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

/** How long a process is left alone before its idle RSS is read: start-up garbage collected. */
export const IDLE_MS = 2_000;

/** A binary as the benchmark starts it: `command args…`, and which form that is, for the report. */
export interface Launch {
  command: string;
  args: string[];
  form: 'single executable' | 'bundle under node';
  /** The environment it runs with: a daemon gets the NODE_OPTIONS that deploy/ gives it. */
  env?: NodeJS.ProcessEnv;
}

const REPOSITORY = path.resolve(import.meta.dirname, '../../..');

/**
 * The production form of an operand: the single executable of `pnpm build:binaries` where it is
 * built, else its bundle under this Node (the bin script, which loads the simulator only when a
 * simulated node is opened). `simulated`: the node is a simulated one, which only the bundle can open.
 */
export function productionForm(operand: Operand, options: { simulated?: boolean } = {}): Launch {
  const sea = path.join(REPOSITORY, 'dist/binaries', operand);
  if (!options.simulated && existsSync(sea)) {
    cachedAsAfterExec(sea, ['--version']);
    return { command: sea, args: [], form: 'single executable' };
  }
  return { command: process.execPath, args: [repositoryBinaries()[operand]], form: 'bundle under node' };
}

const recached = new Set<string>();

/**
 * Puts an executable in the page cache as running it puts it there, once per benchmark process.
 * A file just written by the build sits in the page cache in large folios (ext4 on Linux 6.x), and a
 * page fault maps the whole folio: a single executable started right after `pnpm build:binaries`
 * counted about 13 MB more file-backed resident memory than after its pages were dropped and read
 * back by exec (54 against 41 MB for the device plugin; a do-nothing single executable 44 against 30).
 * The same holds for the Go reference, which `go build` has just written. GNU dd's `iflag=nocache
 * count=0` drops the file's pages (POSIX_FADV_DONTNEED); one run with `warmUpArgs` (a command that
 * exits at once) reads them back, so the measured starts do not pay the disk either.
 */
export function cachedAsAfterExec(executable: string, warmUpArgs: string[]): void {
  if (recached.has(executable)) return;
  recached.add(executable);
  spawnSync('dd', [`if=${executable}`, 'iflag=nocache', 'count=0'], { stdio: 'ignore' });
  spawnSync(executable, warmUpArgs, { stdio: 'ignore', timeout: 10_000 });
}

/** A binary started to `run`, as deploy/ starts it: with the daemons' Node options. */
export function asDaemon(launch: Launch): Launch {
  return { ...launch, env: { ...process.env, NODE_OPTIONS: DAEMON_NODE_OPTIONS } };
}

/**
 * A copy of a simulated node without the simulator's own directory (its marker, its live FIFOs):
 * an ordinary host tree, as a captured real host would be, which a binary opens exactly as in
 * production (the single executable has no simulator at all). Returns `dest`.
 */
export function plainHostTree(simulated: string, dest: string): string {
  const simulatorOwn = (src: string) => path.relative(simulated, src).split(path.sep)[0] === '.gpucc-sim';
  cpSync(simulated, dest, {
    recursive: true,
    verbatimSymlinks: true,
    filter: (src) => !src.endsWith('.sock') && !simulatorOwn(src),
  });
  return dest;
}

/** One process start, measured from exec until it exits. */
export function execToExit(command: string, args: string[]): Promise<number> {
  const t = performance.now();
  const child = spawn(command, args, { stdio: 'ignore' });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve(performance.now() - t) : reject(new Error(`${command} ${args.join(' ')} exited ${code}`)),
    );
  });
}

/** Starts a process and resolves once it has printed its first line (measured from exec). */
export function execToFirstLine(command: string, args: string[]): Promise<{ ms: number; child: ChildProcess }> {
  const t = performance.now();
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${command} exited ${code} before printing`)));
    createInterface({ input: child.stdout! }).once('line', () => resolve({ ms: performance.now() - t, child }));
  });
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/**
 * A bare Node.js process (this Node, which the single executables are built from), measured in the
 * same run as the figures held against it. Its starts are taken in pairs with ours (one of ours, one
 * bare, …), so that the machine's load, which changes from second to second, weighs on both alike.
 */
export const bareNode = {
  /** exec → exit of `node -e 0`: what every one-shot command pays before its first line of code. */
  exit: () => execToExit(process.execPath, ['-e', '0']),
  /** exec → first line of a script that prints one and stays up: a daemon's floor for exec → ready. */
  async firstLine(): Promise<number> {
    const { ms, child } = await execToFirstLine(process.execPath, [
      '-e',
      "console.log('ready'); setInterval(() => {}, 1000)",
    ]);
    await stopChild(child);
    return ms;
  },
  /** Resident memory of `node -e "setInterval(…)"` IDLE_MS after its start (median of 3). */
  async idleRssMb(): Promise<number> {
    const rss: number[] = [];
    for (let i = 0; i < 3; i++) {
      const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
      await sleep(IDLE_MS);
      rss.push(rssMb(child.pid!));
      await stopChild(child);
    }
    return median(rss);
  },
};

/** Runs `ours` and `bare` alternately, `runs` times each; the median of each. */
export async function paired(runs: number, ours: () => Promise<number>, bare: () => Promise<number>) {
  const o: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < runs; i++) {
    o.push(await ours());
    b.push(await bare());
  }
  return { ours: median(o), bare: median(b) };
}

/**
 * Allocate latency on a device plugin's socket, through the simulator's grpc-js client (the same client for
 * every plugin measured, so the client's own cost is the same on each side): 16 callers on their own
 * connections, first one caller alone, then all 16 at once, each call asking for two devices. With
 * the default counts that is 5,000 calls in all (`calls`), after which the plugin's RSS is read.
 */
export async function allocateLatency(socket: string, ids: string[], calls = { single: 520, concurrent: 275 }) {
  const callers = Array.from({ length: 16 }, () => new DevicePluginClient(socket));
  const call = (client: DevicePluginClient, n: number) =>
    client.allocate({ container_requests: [{ devices_ids: [ids[n % ids.length]!, ids[(n + 3) % ids.length]!] }] });
  const warmUp = 5;
  for (const client of callers) for (let n = 0; n < warmUp; n++) await call(client, n); // connect and warm up
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
  return { single, concurrent, calls: callers.length * (warmUp + calls.concurrent) + calls.single };
}
