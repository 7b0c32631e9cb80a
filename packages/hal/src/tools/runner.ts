import { GpuccError } from '../errors/index.js';
import { signalGroup, trackGroup, untrackGroup } from './process-group.js';

export interface RunToolOptions {
  /** Executable path, or a bare name looked up in PATH. Never interpreted by a shell. */
  command: string;
  args: readonly string[];
  /** Deadline for the whole run; then SIGTERM, then SIGKILL after `killGraceMs`. Required on purpose. */
  timeoutMs: number;
  /** Extra environment, merged over the current one. */
  env?: Readonly<Record<string, string>>;
  cwd?: string;
  /** Text written to the tool's stdin; without it stdin is /dev/null so a tool never waits on it. */
  input?: string;
  /** Exit codes that count as success (default `[0]`), for tools that use codes to report states. */
  allowedExitCodes?: readonly number[];
  /** Time between SIGTERM and SIGKILL after a timeout or an abort (default 5000 ms). */
  killGraceMs?: number;
  /** Aborting kills the tool (SIGTERM, then SIGKILL) and rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface ToolResult {
  /** Output exactly as the tool printed it (final newline kept). */
  stdout: string;
  stderr: string;
  exitCode: number;
  durationMs: number;
}

const DEFAULT_KILL_GRACE_MS = 5_000;
const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;
const TAIL_LINES = 20;
const TAIL_CHARS = 2_000;

/**
 * Runs an external tool with an argument array (no shell), a deadline and captured output, and maps
 * every way it can fail to a GpuccError: TOOL_NOT_FOUND, TOOL_TIMEOUT or TOOL_FAILED.
 */
export async function runTool(options: RunToolOptions): Promise<ToolResult> {
  const { command, args, timeoutMs } = options;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) {
    throw new TypeError(`runTool: timeoutMs must be a positive integer, got ${timeoutMs}`);
  }
  options.signal?.throwIfAborted();
  const graceMs = options.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
  const commandLine = formatCommandLine(command, args);

  // Loaded on first use: execa costs about a third of a second to import, which every binary and
  // every fake tool would otherwise pay at start-up even when it never runs a tool.
  const { execa } = await import('execa');
  const subprocess = execa(command, [...args], {
    shell: false,
    reject: false,
    timeout: timeoutMs,
    killSignal: 'SIGTERM',
    forceKillAfterDelay: graceMs,
    detached: true, // own process group: see process-group.ts
    stripFinalNewline: false,
    maxBuffer: MAX_OUTPUT_BYTES,
    encoding: 'utf8',
    ...(options.env ? { env: { ...options.env } } : {}),
    ...(options.cwd ? { cwd: options.cwd } : {}),
    ...(options.input === undefined ? { stdin: 'ignore' as const } : { input: options.input }),
  });

  // execa signals only the process it started; these timers reach its children as well.
  const pid = subprocess.pid;
  const timers: NodeJS.Timeout[] = [];
  let aborted = false;
  let deadlinePassed = false;
  const killTree = () => {
    if (pid === undefined) return;
    signalGroup(pid, 'SIGTERM');
    timers.push(setTimeout(() => signalGroup(pid, 'SIGKILL'), graceMs));
  };
  const onAbort = () => {
    aborted = true;
    killTree();
  };
  if (pid !== undefined) {
    trackGroup(pid);
    timers.push(
      setTimeout(() => {
        deadlinePassed = true;
        killTree();
      }, timeoutMs),
    );
  }
  options.signal?.addEventListener('abort', onAbort, { once: true });

  let result: Awaited<typeof subprocess>;
  try {
    result = await subprocess;
  } finally {
    for (const timer of timers) clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
    if (pid !== undefined) untrackGroup(pid);
  }

  const stdout = String(result.stdout ?? '');
  const stderr = String(result.stderr ?? '');
  const stderrTail = tailOf(stderr);
  const base = { command, args: [...args], durationMs: result.durationMs };

  if (aborted && options.signal) throw options.signal.reason;

  // our deadline timer counts only when the tool did not exit by itself first
  const timedOut = result.timedOut || (deadlinePassed && result.exitCode === undefined);
  if (result.exitCode === undefined && isSpawnNotFound(result.code) && !timedOut) {
    const where = options.cwd ? ` (or the working directory ${options.cwd} is missing)` : '';
    throw new GpuccError('ERR_GPUCC_TOOL_NOT_FOUND', `cannot run ${commandLine}: ${result.code}`, {
      hint: `install ${command} or configure the path to it; ${command} was not found or is not executable${where}`,
      cause: result.cause ?? result,
      details: { ...base, path: command, errno: result.code },
    });
  }

  if (timedOut) {
    const how = result.isForcefullyTerminated
      ? `killed with SIGKILL after ignoring SIGTERM for ${graceMs} ms`
      : `killed with ${result.signal ?? 'SIGTERM'}`;
    throw new GpuccError(
      'ERR_GPUCC_TOOL_TIMEOUT',
      `${commandLine} did not finish within ${timeoutMs} ms and was ${how}${tailSuffix(stderrTail)}`,
      {
        hint: 'the tool or the device it talks to is stuck; check the device and the kernel log (dmesg), or raise the timeout',
        details: { ...base, timeoutMs, signal: result.signal, forced: result.isForcefullyTerminated, stderrTail },
      },
    );
  }

  if (result.exitCode === undefined || result.signal !== undefined) {
    const why = result.signal
      ? `was killed by ${result.signal}`
      : result.isMaxBuffer
        ? `printed more than ${MAX_OUTPUT_BYTES} bytes`
        : `failed to run (${result.code ?? result.shortMessage ?? 'unknown error'})`;
    throw new GpuccError('ERR_GPUCC_TOOL_FAILED', `${commandLine} ${why}${tailSuffix(stderrTail)}`, {
      hint: 'see the tool output in the error details and the kernel log (dmesg)',
      cause: result.cause,
      details: { ...base, signal: result.signal, errno: result.code, stderrTail },
    });
  }

  const allowed = options.allowedExitCodes ?? [0];
  if (!allowed.includes(result.exitCode)) {
    throw new GpuccError(
      'ERR_GPUCC_TOOL_FAILED',
      `${commandLine} exited with code ${result.exitCode}${tailSuffix(stderrTail)}`,
      {
        hint: 'see the stderr tail in the message; run the same command by hand to reproduce',
        details: { ...base, exitCode: result.exitCode, stderrTail },
      },
    );
  }

  return { stdout, stderr, exitCode: result.exitCode, durationMs: result.durationMs };
}

function isSpawnNotFound(code: string | undefined): boolean {
  return code === 'ENOENT' || code === 'EACCES' || code === 'ENOTDIR';
}

function tailSuffix(tail: string): string {
  return tail ? `; stderr:\n${tail}` : '';
}

/** The last lines of a tool's stderr, bounded in lines and characters, for messages and logs. */
export function tailOf(text: string, maxLines = TAIL_LINES, maxChars = TAIL_CHARS): string {
  const lines = text.trimEnd().split('\n');
  let tail = lines.slice(-maxLines).join('\n');
  if (tail.length > maxChars) tail = `…${tail.slice(-(maxChars - 1))}`;
  return tail;
}

/** A command line for humans, quoted as a POSIX shell would need it (display only: nothing runs it). */
export function formatCommandLine(command: string, args: readonly string[]): string {
  return [command, ...args].map(quoteForDisplay).join(' ');
}

function quoteForDisplay(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}
