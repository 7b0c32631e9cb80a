import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { until } from '@gpucc/testbed/real';

/**
 * What every real-tier test starts goes through here, so that nothing outlives it: processes are
 * stopped by the tests' afterAll/afterEach, killed when the test worker exits for any reason, and
 * (being in the terminal's process group) interrupted with it on Ctrl-C; temp dirs are removed.
 */

export const REPO = path.resolve(import.meta.dirname, '../..');

/** What one of our scripts prints on stdout (trimmed), or why it failed (its stderr). */
function scriptOutput(script: string, args: string[]): { out: string } | { why: string } {
  try {
    const out = execFileSync('sh', [path.join(REPO, script), ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
    return { out };
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? '').trim();
    return { why: stderr || `${script} ${args.join(' ')} failed` };
  }
}

/** The bin dir of the real components (scripts/k8s.sh), or why there is none. */
export function realBinDir(): { dir: string } | { why: string } {
  const found = scriptOutput('scripts/k8s.sh', ['path']);
  return 'out' in found ? { dir: found.out } : found;
}

/**
 * The Go reference device plugin that `pnpm bench` holds ours against, built on first use
 * (scripts/go-reference.sh, seconds with a warm module cache), or why there is none (no Go, say).
 */
export function goReferenceBinary(): { binary: string } | { why: string } {
  const found = scriptOutput('scripts/go-reference.sh', ['build']);
  return 'out' in found ? { binary: found.out } : found;
}

/**
 * The real tier runs when the components are built; GPUCC_REAL_K8S=1 (CI, `npm run test:real`)
 * makes a missing build a failure instead of a skip.
 */
export function realTier(): { bin: string | undefined; required: boolean } {
  const found = realBinDir();
  const required = process.env.GPUCC_REAL_K8S === '1';
  if ('why' in found && required) {
    throw new Error(`GPUCC_REAL_K8S=1 but the real components are not built: ${found.why}`);
  }
  return { bin: 'dir' in found ? found.dir : undefined, required };
}

/** A bin script of this repository's packages (they load the bundles of `pnpm run build`). */
export function packageBin(pkg: string, name = pkg): string {
  return path.join(REPO, 'packages', pkg, 'bin', `${name}.mjs`);
}

const dirs = new Set<string>();

/** A fresh temp dir, removed by removeTempDirs (tmpfs where there is one: nodes are many small files). */
export function tempDir(prefix: string): string {
  const base = process.platform === 'linux' ? '/dev/shm' : os.tmpdir();
  const dir = mkdtempSync(path.join(base, `gpucc-real-${prefix}-`));
  dirs.add(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs.clear();
}

export { freePort } from '@gpucc/testbed/fixtures';
export { until } from '@gpucc/testbed/real';

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  /** Resolves with the exit code (or the signal's name) when the process has exited. */
  readonly exited: Promise<number | string>;
  /** Everything it printed so far, stdout and stderr interleaved. */
  output(): string;
  /** Lines of its JSON logs (pino) so far, parsed; other lines are skipped. */
  logs(): Array<Record<string, unknown>>;
  /** SIGTERM (or the given signal), SIGKILL after `graceMs`; resolves when it has exited. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | string>;
}

const live = new Set<Proc>();

function killAll(): void {
  for (const p of live) p.child.kill('SIGKILL');
}
process.on('exit', killAll);
// A worker killed by a signal emits no 'exit': remove the temp dirs and exit with the signal's
// code instead, so that every 'exit' hook runs: ours, and hal's for the process groups of its
// services (kube-apiserver, etcd, the device manager of @gpucc/testbed/real).
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    removeTempDirs();
    process.exit(128 + os.constants.signals[signal]);
  });
}

export function startProcess(
  name: string,
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; stdin?: boolean } = {},
): Proc {
  const child = spawn(command, args, {
    env: { ...process.env, ...options.env },
    stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  let text = '';
  const append = (chunk: Buffer) => {
    text += chunk.toString('utf8');
    // Bounded: an API server at verbosity 2 says a lot over a long test.
    if (text.length > 4_000_000) text = text.slice(-2_000_000);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
    child.once('error', (error) => {
      text += `\nspawn failed: ${error.message}\n`;
      resolve('spawn-failed');
    });
  });
  const proc: Proc = {
    name,
    child,
    exited,
    output: () => text,
    logs: () =>
      text.split('\n').flatMap((line) => {
        if (!line.startsWith('{')) return [];
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      }),
    async stop(signal = 'SIGTERM', graceMs = 10_000) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      live.delete(proc);
      keepLog(proc);
      return exited;
    },
  };
  live.add(proc);
  void exited.then(() => live.delete(proc));
  return proc;
}

/** GPUCC_REAL_LOGS=DIR keeps what each stopped process printed, as DIR/<name>-<pid>.log. */
function keepLog(proc: Proc): void {
  const dir = process.env.GPUCC_REAL_LOGS;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, `${proc.name}-${proc.child.pid}.log`), proc.output());
}

/** Stops every process still running, newest first (operands before the servers they talk to). */
export async function stopAll(): Promise<void> {
  for (const p of [...live].reverse()) await p.stop();
}

/** The first JSON log line of `proc` with this `event` (and matching fields), once it is there. */
export function logged(proc: Proc, event: string, match: Record<string, unknown> = {}, timeoutMs = 30_000) {
  return until(
    `${proc.name} to log ${event} ${JSON.stringify(match)}`,
    () => proc.logs().find((l) => l.event === event && Object.entries(match).every(([k, v]) => l[k] === v)),
    timeoutMs,
  );
}
