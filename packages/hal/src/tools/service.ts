import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { signalGroup, trackGroup, untrackGroup } from './process-group.js';

/**
 * A long-running process (a daemon, a fake API server) started by a supervisor: unlike `runTool`,
 * which waits for a result, this hands back a handle at once. It gets its own process group so that
 * a kill reaches what it started too (a container's processes die together), and its stdout and
 * stderr are appended to one log file instead of a pipe that a slow reader could fill and block.
 */
export interface ServiceOptions {
  command: string;
  args: readonly string[];
  /** Added to the supervisor's environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** stdout and stderr are appended here. */
  logFile: string;
  /**
   * A process driven by a line protocol (a test harness): stdin is a pipe that `write` feeds, and
   * each stdout line goes here instead of the log (stderr still goes to the log).
   */
  onStdoutLine?: (line: string) => void;
}

export interface ServiceExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Service {
  readonly pid: number;
  /** Settles when the process has exited (never rejects). */
  readonly exited: Promise<ServiceExit>;
  /** The exit once it happened; undefined while it runs. */
  exit(): ServiceExit | undefined;
  /** Signals the whole process group; false when it is gone already. */
  signal(signal: NodeJS.Signals): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit. */
  stop(graceMs?: number): Promise<ServiceExit>;
  /** Writes to its stdin (only with `onStdoutLine`); false when there is no stdin or it has closed. */
  write(text: string): boolean;
}

export function startService(options: ServiceOptions): Service {
  const log = openSync(options.logFile, 'a');
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(options.command, [...options.args], {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: options.onStdoutLine ? ['pipe', 'pipe', log] : ['ignore', log, log],
      detached: true,
    });
  } finally {
    closeSync(log); // the child holds its own copy
  }
  const { onStdoutLine } = options;
  if (onStdoutLine && child.stdout) createInterface({ input: child.stdout }).on('line', onStdoutLine);
  // A write after the process died is an EPIPE on the stream: `write` then answers false instead.
  child.stdin?.on('error', () => {});
  let result: ServiceExit | undefined;
  const exited = new Promise<ServiceExit>((resolve) => {
    child.once('error', () => {
      result ??= { code: 127, signal: null };
      resolve(result);
    });
    child.once('exit', (code, signal) => {
      result = { code, signal };
      if (child.pid !== undefined) untrackGroup(child.pid);
      resolve(result);
    });
  });
  const pid = child.pid ?? -1;
  if (pid > 0) trackGroup(pid);
  const signal = (name: NodeJS.Signals) => result === undefined && pid > 0 && signalGroup(pid, name);
  return {
    pid,
    exited,
    exit: () => result,
    signal,
    async stop(graceMs = 5000) {
      if (result !== undefined) return result;
      signal('SIGTERM');
      const timer = setTimeout(() => signal('SIGKILL'), graceMs);
      const exit = await exited;
      clearTimeout(timer);
      // The leader is gone; members it left behind (a tool mid-run) go with it, as in a container.
      if (pid > 0) signalGroup(pid, 'SIGKILL');
      return exit;
    },
    write(text) {
      if (result !== undefined || !child.stdin?.writable) return false;
      child.stdin.write(text);
      return true;
    },
  };
}

/**
 * Starts a process that must outlive its starter, whatever happens to it (the simulated kernel: a
 * kill -9 of the writer that started it must not stop a write half-way). Own session, not tracked
 * (so not killed when the starter exits), not waited for; output appended to `logFile`.
 */
export function spawnDetached(options: ServiceOptions): number | undefined {
  const log = openSync(options.logFile, 'a');
  try {
    const child = spawn(options.command, [...options.args], {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', log, log],
      detached: true,
    });
    child.on('error', () => {}); // reported by the caller, which finds no server
    child.unref();
    return child.pid;
  } finally {
    closeSync(log);
  }
}
