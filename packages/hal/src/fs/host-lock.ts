import path from 'node:path';
import { errnoOf, GpuccError } from '../errors/index.js';
import type { HostRoot } from './host-root.js';
import * as localFs from './local-fs.js';

export interface HostLockOptions {
  /** How long to wait for another holder; 0 = fail at once. */
  timeoutMs: number;
  /** Ends the wait early (shutdown). */
  signal?: AbortSignal;
  /** Who wants it, for the error message (`vfio-manager bind`). */
  owner: string;
}

export interface HostLock {
  /** The lock's host path (relative to the root). */
  readonly path: string;
  release(): Promise<void>;
}

const POLL_MS = 50;
// A breaker killed between taking and dropping the guard leaves it: it is broken after this long.
const GUARD_STALE_MS = 5_000;

/**
 * A host-wide lock for one writer at a time: a unix socket listening at `relPath` under the host
 * root. A second process finds the path in use and waits (up to `timeoutMs`) while a live process
 * accepts connections there. The kernel closes the socket of a process killed with SIGKILL, so a
 * lock left behind is recognised by a refused connection (no pid files, no /proc, so it works across
 * PID namespaces: a DaemonSet pod and an operator's shell on the host) and its file is removed,
 * under a short guard directory so that two processes never remove a live lock.
 */
export async function acquireHostLock(sysfs: HostRoot, relPath: string, options: HostLockOptions): Promise<HostLock> {
  const abs = sysfs.resolve(relPath);
  const guard = `${abs}.break`;
  const since = Date.now();
  for (;;) {
    if (options.signal?.aborted) throw interrupted(sysfs, relPath, options.owner);
    let listening: Awaited<ReturnType<typeof localFs.listenExclusive>>;
    try {
      localFs.makeDir(path.dirname(abs), 0o755);
      listening = await localFs.listenExclusive(abs);
    } catch (error) {
      throw new GpuccError(
        'ERR_GPUCC_LOCK_FAILED',
        `cannot create the lock ${sysfs.display(relPath)}: ${errnoOf(error) ?? String(error)}`,
        {
          hint: 'the directory must be writable and on a local filesystem; the lock path must be under 108 bytes',
          cause: error,
          details: { path: relPath, errno: errnoOf(error) },
        },
      );
    }
    if (listening !== 'in-use') {
      const server = listening;
      return { path: relPath, release: () => localFs.closeServer(server) };
    }
    if (!(await localFs.socketHasListener(abs, 1000))) {
      await breakStale(abs, guard);
      continue;
    }
    if (Date.now() - since >= options.timeoutMs) {
      throw new GpuccError(
        'ERR_GPUCC_LOCKED',
        `${options.owner}: another process holds ${sysfs.display(relPath)} (waited ${options.timeoutMs} ms)`,
        {
          hint: 'another process (a daemon, or a command in another shell) is changing the same host state: wait for it, or raise --lock-timeout',
          details: { path: relPath, timeoutMs: options.timeoutMs },
        },
      );
    }
    await sleep(POLL_MS, options.signal);
  }
}

/**
 * Removes a lock file whose process is gone, re-checked under the guard: nobody can listen at the
 * path while the file is there, and only a guard holder removes it, so a file found dead under the
 * guard is still dead when it is removed (a live lock is never removed).
 */
async function breakStale(abs: string, guard: string): Promise<void> {
  if (!localFs.tryMakeDirExclusive(guard)) {
    const age = localFs.ageMs(guard);
    if (age !== undefined && age > GUARD_STALE_MS) localFs.removeSync(guard);
    else await sleep(5);
    return;
  }
  try {
    if (!(await localFs.socketHasListener(abs, 1000))) localFs.removeSync(abs);
  } finally {
    localFs.removeSync(guard);
  }
}

function interrupted(sysfs: HostRoot, relPath: string, owner: string): GpuccError {
  return new GpuccError('ERR_GPUCC_INTERRUPTED', `${owner}: stopped while waiting for ${sysfs.display(relPath)}`, {
    hint: 'nothing was written; the next run picks it up',
  });
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}
