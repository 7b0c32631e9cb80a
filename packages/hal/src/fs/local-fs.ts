/**
 * The only module of gpucc that imports `node:fs`. Everything else reaches the host through `HostRoot`
 * (rooted, validated, recorded) or, for the simulator that builds host trees, through these functions.
 * Paths here are absolute and already checked by the caller: this is the local machine's own
 * filesystem, unrooted (a HostRoot is the host's, every path joined under its root).
 */

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { constants, type FSWatcher, promises as fsp, watch as fsWatch } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import path from 'node:path';
import { waitForFifoReaderBlocking } from './blocking-writer.js';

export type FileKind = 'file' | 'dir' | 'symlink' | 'char' | 'other';

// sysfs attributes are at most a page; one shared buffer saves the fstat and allocation of readFileSync.
const SMALL_READ = Buffer.allocUnsafe(64 * 1024);

export function readText(abs: string): string {
  const fd = fs.openSync(abs, 'r');
  try {
    const n = fs.readSync(fd, SMALL_READ, 0, SMALL_READ.length, 0);
    if (n < SMALL_READ.length) return SMALL_READ.toString('utf8', 0, n);
  } finally {
    fs.closeSync(fd);
  }
  return fs.readFileSync(abs, 'utf8'); // larger files (pci.ids, state) are read whole
}

export function readBytes(abs: string): Buffer {
  return fs.readFileSync(abs);
}

/** The bytes of a file from `offset` to its end now (empty when it has not grown): a log being followed. */
export function readFrom(abs: string, offset: number): Buffer {
  const fd = fs.openSync(abs, 'r');
  try {
    const length = Math.max(0, fs.fstatSync(fd).size - offset);
    const buffer = Buffer.alloc(length);
    const read = length === 0 ? 0 : fs.readSync(fd, buffer, 0, length, offset);
    return buffer.subarray(0, read);
  } finally {
    fs.closeSync(fd);
  }
}

export function readLink(abs: string): string {
  return fs.readlinkSync(abs);
}

export function listDir(abs: string): string[] {
  return fs.readdirSync(abs);
}

/** The kind of a path without following a final symlink, or undefined when it does not exist. */
export function kindOf(abs: string): FileKind | undefined {
  try {
    const st = fs.lstatSync(abs);
    if (st.isSymbolicLink()) return 'symlink';
    if (st.isDirectory()) return 'dir';
    if (st.isFile()) return 'file';
    if (st.isCharacterDevice()) return 'char';
    return 'other';
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
}

/**
 * The kind of a file this process can open for reading (symlinks followed), or the error of trying:
 * ENOENT, EACCES, ELOOP... Opened non-blocking, so a FIFO cannot hang the caller; nothing is read.
 */
export function probeReadable(abs: string): FileKind {
  const fd = fs.openSync(abs, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) return 'dir';
    if (st.isFile()) return 'file';
    if (st.isCharacterDevice()) return 'char';
    return 'other';
  } finally {
    fs.closeSync(fd);
  }
}

/** Whether a path exists, following symlinks (a dangling link does not exist). */
export function exists(abs: string): boolean {
  return fs.existsSync(abs);
}

export function modeOf(abs: string): number {
  return fs.statSync(abs).mode & 0o7777;
}

export function realPath(abs: string): string {
  return fs.realpathSync(abs);
}

const MAX_SYMLINK_HOPS = 40; // the kernel's own limit (ELOOP)

/**
 * Resolves `rel` under `root` as if `root` were `/` (what openat2's RESOLVE_IN_ROOT does): an
 * absolute symlink such as a host's `/var/run -> /run` is followed inside the root, never into the
 * filesystem of the process, and `..` stops at the root. The final component is followed only with
 * `followFinal` (reads), never for operations on the link itself (readlink, replace). Missing
 * components are fine. Undefined on a symlink loop.
 */
export function resolveInRoot(root: string, rel: string, followFinal: boolean): string | undefined {
  const pending = rel.split('/').filter((c) => c !== '' && c !== '.');
  const resolved: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const component = pending.shift()!;
    if (component === '..') {
      resolved.pop();
      continue;
    }
    const candidate = path.join(root, ...resolved, component);
    let target: string | undefined;
    if (followFinal || pending.length > 0) {
      try {
        target = fs.lstatSync(candidate).isSymbolicLink() ? fs.readlinkSync(candidate) : undefined;
      } catch (error) {
        if (!isMissing(error)) throw error;
      }
    }
    if (target === undefined) {
      resolved.push(component);
      continue;
    }
    if (++hops > MAX_SYMLINK_HOPS) return undefined;
    if (target.startsWith('/')) resolved.length = 0;
    pending.unshift(...target.split('/').filter((c) => c !== '' && c !== '.'));
  }
  return path.join(root, ...resolved);
}

export function isMissing(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/**
 * One kernel attribute write: open O_WRONLY|O_TRUNC (never O_CREAT, so a missing attribute fails
 * instead of becoming a regular file), one write(2) of the whole buffer, close
 * (docs/facts/kernel-sysfs-pci.md#write-rules).
 */
export async function writeAttribute(abs: string, data: Uint8Array): Promise<void> {
  const handle = await fsp.open(abs, constants.O_WRONLY | constants.O_TRUNC);
  try {
    await handle.write(data, 0, data.length, null);
  } finally {
    await handle.close();
  }
}

/** Synchronous variant for the simulated kernel's own bookkeeping files. */
export function writeAttributeSync(abs: string, data: Uint8Array): void {
  const fd = fs.openSync(abs, constants.O_WRONLY | constants.O_TRUNC);
  try {
    fs.writeSync(fd, data, 0, data.length, null);
  } finally {
    fs.closeSync(fd);
  }
}

export type AtomicWriteResult = 'written' | 'unchanged';

export class SymlinkTargetError extends Error {
  readonly code = 'ESYMLINK';
}

/**
 * Replaces a file atomically: temp file in the same directory (a dot name ending in `.tmp`, which CDI
 * scanners ignore), exclusive create, explicit mode, fsync, rename, fsync of the directory. Skips the
 * write when the bytes on disk are already identical. On failure the temp file is removed and the old
 * file stays as it was.
 */
export async function writeFileAtomic(abs: string, data: Uint8Array, mode: number): Promise<AtomicWriteResult> {
  const dir = path.dirname(abs);
  const kind = kindOf(abs);
  if (kind === 'symlink') throw new SymlinkTargetError(`${abs} is a symlink`);
  if (kind === 'file') {
    const current = fs.readFileSync(abs);
    if (current.equals(data) && modeOf(abs) === mode) return 'unchanged';
  }
  const temp = path.join(dir, `.${path.basename(abs)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
    await handle.chmod(mode); // the umask must not decide the mode
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fsp.rename(temp, abs);
  } catch (error) {
    await handle?.close().catch(() => {});
    await fsp.rm(temp, { force: true });
    throw error;
  }
  await syncDir(dir);
  return 'written';
}

async function syncDir(dir: string): Promise<void> {
  const handle = await fsp.open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } catch {
    // some filesystems refuse fsync on a directory; the rename is still atomic there
  } finally {
    await handle.close();
  }
}

export async function removeFile(abs: string): Promise<boolean> {
  try {
    await fsp.unlink(abs);
    return true;
  } catch (error) {
    if (isMissing(error)) return false;
    throw error;
  }
}

export function makeDir(abs: string, mode?: number): void {
  fs.mkdirSync(abs, { recursive: true, ...(mode === undefined ? {} : { mode }) });
}

// ---- tree building (simulated nodes, captured fixtures) -------------------------------------------

export function writeFileSync(abs: string, data: string | Uint8Array, mode = 0o644): void {
  const fd = fs.openSync(abs, 'w', mode);
  try {
    fs.fchmodSync(fd, mode); // the umask must not decide the mode
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
  } finally {
    fs.closeSync(fd);
  }
}

export function symlinkSync(target: string, abs: string): void {
  fs.symlinkSync(target, abs);
}

/** A new directory with a unique name `<prefix>XXXXXX` under `base` (the simulator's and the tests' scratch nodes). */
export function makeTempDir(base: string, prefix: string): string {
  return fs.mkdtempSync(path.join(base, prefix));
}

export function removeSync(abs: string): void {
  fs.rmSync(abs, { recursive: true, force: true });
}

export function renameSync(from: string, to: string): void {
  fs.renameSync(from, to);
}

/** Exclusive creation of a directory: the primitive behind the simulator's cross-process lock. */
export function tryMakeDirExclusive(abs: string): boolean {
  try {
    fs.mkdirSync(abs);
    return true;
  } catch (error) {
    if ((error as { code?: unknown }).code === 'EEXIST') return false;
    throw error;
  }
}

export function appendText(abs: string, text: string): void {
  fs.appendFileSync(abs, text);
}

/**
 * A stamp that changes whenever the file is replaced or rewritten (inode, mtime, size), or undefined
 * when it does not exist. mtime alone is not enough: the kernel's clock for it is coarse (a jiffy).
 */
export function fileStamp(abs: string): string | undefined {
  try {
    // ctime too: a rename sets the renamed file's ctime. The millisecond times carry microseconds; a
    // bigint stat (nanoseconds) cost the device plugin's Allocate path 10% for nothing more.
    const st = fs.statSync(abs, { throwIfNoEntry: false });
    if (st === undefined) return undefined;
    return `${st.ino}:${st.mtimeMs}:${st.ctimeMs}:${st.size}`;
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
}

export function ageMs(abs: string): number | undefined {
  try {
    return Date.now() - fs.statSync(abs).mtimeMs;
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
}

/**
 * Whether a process accepts connections on the unix socket at `abs`. A socket file outlives a
 * process killed with SIGKILL; connecting tells a live server (true) from such a leftover (false:
 * ECONNREFUSED, or the file is gone or not a socket). Undecided within `timeoutMs` counts as live.
 */
export function socketHasListener(abs: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ path: abs });
    const done = (live: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(live);
    };
    const timer = setTimeout(() => done(true), timeoutMs);
    socket.once('connect', () => done(true));
    socket.once('error', (error: NodeJS.ErrnoException) => done(error.code === 'EAGAIN'));
  });
}

/**
 * Listens on a new unix socket at `abs`: the server, or 'in-use' when the path exists already (a live
 * holder or a socket file left by a killed one). The kernel closes the listener when its process dies,
 * whatever the death, which is what makes a socket a crash-safe lock. The server does not keep the
 * process alive, and connections to it (liveness probes) are closed at once.
 */
export function listenExclusive(abs: string): Promise<Server | 'in-use'> {
  return new Promise((resolve, reject) => {
    const server = createServer((socket) => socket.destroy());
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') resolve('in-use');
      else reject(error);
    });
    server.listen(abs, () => {
      server.unref();
      resolve(server);
    });
  });
}

/** Closes a server; for a unix socket this also removes its file. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

// ---- watching --------------------------------------------------------------------------------------

/** Watches one directory (not recursive); returns a closer. A missing directory yields a no-op closer. */
export function watchDir(abs: string, onChange: (name: string | null) => void): () => void {
  let watcher: FSWatcher;
  try {
    watcher = fsWatch(abs, { persistent: false }, (_event, name) => onChange(name ? String(name) : null));
  } catch (error) {
    if (isMissing(error)) return () => {};
    throw error;
  }
  watcher.on('error', () => watcher.close());
  return () => watcher.close();
}

// ---- FIFOs: the simulated kernel's blocking write (packages/sim kernel/client.ts) ----------------

/** Creates named pipes (Node has no mkfifo(3); coreutils' mkfifo is on every Linux host). */
export function makeFifos(paths: readonly string[]): void {
  if (paths.length > 0) execFileSync('mkfifo', ['-m', '600', '--', ...paths], { stdio: 'ignore' });
}

/**
 * Blocks until a reader opens the FIFO: open(2) with O_WRONLY on a FIFO sleeps in the kernel until
 * the other end is opened, exactly as a write(2) to a sysfs attribute whose store blocks does. It
 * runs where the hal runs such writes (blocking-writer.ts), so it holds a thread there, not one of
 * this process's threadpool.
 */
export function waitForFifoReader(abs: string): Promise<void> {
  return waitForFifoReaderBlocking(abs);
}

/** Opens the read end of a FIFO without waiting for a writer (which it wakes); returns the descriptor. */
export function openFifoReader(abs: string): number {
  return fs.openSync(abs, constants.O_RDONLY | constants.O_NONBLOCK);
}

export function closeFd(fd: number): void {
  fs.closeSync(fd);
}
