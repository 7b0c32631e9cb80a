import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireHostLock, HostRoot } from '../src/index.js';

const made: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(path.join(existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'gpucc-lock-'));
  made.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const LOCK = 'var/lib/gpucc/test.lock';
const options = (timeoutMs: number, signal?: AbortSignal) => ({
  timeoutMs,
  owner: 'test',
  ...(signal ? { signal } : {}),
});

/** Another process that holds the lock the way acquireHostLock does: listening on the socket. */
async function holder(abs: string) {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `require('node:net').createServer((s) => s.destroy()).listen(${JSON.stringify(abs)}, () => console.log('up'))`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
  return child;
}

describe('acquireHostLock', () => {
  it('lets one holder in; a second waits, or gives up with ERR_GPUCC_LOCKED; release lets it in', async () => {
    const sysfs = new HostRoot(tempDir());
    const first = await acquireHostLock(sysfs, LOCK, options(0));
    await expect(acquireHostLock(sysfs, LOCK, options(100))).rejects.toMatchObject({ code: 'ERR_GPUCC_LOCKED' });
    const waiting = acquireHostLock(sysfs, LOCK, options(10_000));
    await first.release();
    const second = await waiting;
    expect(existsSync(path.join(sysfs.root, LOCK))).toBe(true);
    await second.release();
    expect(existsSync(path.join(sysfs.root, LOCK))).toBe(false);
  });

  it('is not held by a process killed with SIGKILL: its socket file is removed and the lock taken', async () => {
    const sysfs = new HostRoot(tempDir());
    const abs = sysfs.resolve(LOCK);
    mkdirSync(path.dirname(abs), { recursive: true });
    const child = await holder(abs);
    await expect(acquireHostLock(sysfs, LOCK, options(50))).rejects.toMatchObject({ code: 'ERR_GPUCC_LOCKED' });
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect(existsSync(abs)).toBe(true); // the kernel closed the socket; the file stays
    const lock = await acquireHostLock(sysfs, LOCK, options(0));
    await lock.release();
  });

  it('stops waiting when its signal aborts (shutdown), with ERR_GPUCC_INTERRUPTED', async () => {
    const sysfs = new HostRoot(tempDir());
    const first = await acquireHostLock(sysfs, LOCK, options(0));
    const stop = new AbortController();
    const waiting = acquireHostLock(sysfs, LOCK, options(60_000, stop.signal));
    stop.abort();
    await expect(waiting).rejects.toMatchObject({ code: 'ERR_GPUCC_INTERRUPTED' });
    await first.release();
  });
});
