import path from 'node:path';
import { errnoOf, GpuccError, isGpuccError } from '../errors/index.js';
import { PCI_ADDRESS_PATTERN } from '../types/pci-address.js';
import { writeAttributeBlocking } from './blocking-writer.js';
import * as localFs from './local-fs.js';
import { AccessRecorder } from './recorder.js';

/**
 * The side of the kernel that handles attribute writes on a simulated node. On a real host there is
 * none: writes go to the real sysfs. Errors it throws carry an errno `code`, as Node's do.
 */
export interface KernelHook {
  readonly description: string;
  write(relPath: string, data: Uint8Array): Promise<void>;
  /** Throws EACCES for attributes the kernel cannot read (write-only ones). */
  checkRead?(relPath: string): void;
}

export interface HostRootOptions {
  kernel?: KernelHook;
  recorder?: AccessRecorder;
}

export interface WriteOptions {
  /** Deadline for the write(2) to return; unbind and reset can block in the kernel. */
  timeoutMs?: number;
}

const DEFAULT_WRITE_TIMEOUT_MS = 30_000;

/**
 * Writes past their deadline and still blocked in the kernel, by the device they name (per host root).
 * A new store to that device would only queue behind it under the kernel's device_lock, holding one
 * more thread for good: it is refused until the first returns, and a later reconcile sees how it ended.
 */
const blocked = new Map<string, { path: string; value: string; sinceMs: number }>();
const DEVICE_IN_WRITE = new RegExp(`(?:^|/)(${PCI_ADDRESS_PATTERN})(?:/|$)`);

function deviceOfWrite(root: string, relPath: string, value: string): string | undefined {
  const device = DEVICE_IN_WRITE.exec(relPath)?.[1] ?? DEVICE_IN_WRITE.exec(value.trim())?.[1];
  return device === undefined ? undefined : `${root}\0${device}`;
}
// Paths whose writes are kernel attribute stores (handled by the kernel, simulated or not).
const KERNEL_PREFIXES = ['sys/', 'proc/'];

/**
 * Every read, write, readlink and readdir of gpucc goes through a HostRoot: the whole filesystem of one
 * host (`/`, `/host`, or a simulated node) — sys/, proc/, dev/, run/, var/, etc/ alike, not only sysfs —
 * every path relative to its root and checked to stay under it, every access counted.
 * Reads are synchronous (sysfs text attributes answer at once); writes are asynchronous and bounded,
 * because a store such as `unbind` can block in the kernel.
 */
export class HostRoot {
  readonly root: string;
  readonly kernel: KernelHook | undefined;
  readonly recorder: AccessRecorder;

  constructor(hostRoot: string, options: HostRootOptions = {}) {
    const root = path.resolve(hostRoot);
    const problem = dirProblem(root);
    if (problem !== undefined) throw invalidHostRoot(root, `host root ${root} ${problem.text}`, problem.errno);
    this.root = root;
    this.kernel = options.kernel;
    // Counters only unless a recorder is given: a daemon's HostRoot lives for days.
    this.recorder = options.recorder ?? new AccessRecorder({ writeLog: false });
  }

  /**
   * Refuses a root that is no host at all (an empty directory, a wrong mount) before anything is
   * read or written: every operand needs `sys/bus/pci/devices`, so one missing means the root is wrong.
   */
  checkHostLayout(): void {
    const problem = dirProblem(this.resolve(PCI_DEVICES, true));
    if (problem === undefined) return;
    throw invalidHostRoot(
      this.root,
      `host root ${this.root} is not a host: /${PCI_DEVICES} ${problem.text}`,
      problem.errno,
      PCI_DEVICES,
    );
  }

  /** The same host root with a fresh recorder (write log included), for counting one operation's accesses. */
  withRecorder(recorder = new AccessRecorder()): HostRoot {
    return new HostRoot(this.root, { recorder, ...(this.kernel ? { kernel: this.kernel } : {}) });
  }

  get simulated(): boolean {
    return this.kernel !== undefined;
  }

  /**
   * Absolute path of a host path, refusing anything that would leave the root. Under a root other
   * than `/`, symlinks outside sys/ are followed inside the root (a host's `/var/run -> /run` must
   * not lead into the container's own /run); sysfs links are relative by construction.
   */
  resolve(relPath: string, followFinal = false): string {
    const clean = relPath.replace(/^\/+/, '');
    const abs = path.resolve(this.root, clean);
    if (abs !== this.root && !abs.startsWith(this.root === '/' ? '/' : `${this.root}${path.sep}`)) {
      throw this.escapes(relPath);
    }
    if (this.root === '/' || clean.startsWith('sys/')) return abs;
    const inRoot = localFs.resolveInRoot(this.root, path.relative(this.root, abs), followFinal);
    if (inRoot === undefined) throw this.escapes(relPath);
    return inRoot;
  }

  private escapes(relPath: string): GpuccError {
    return new GpuccError('ERR_GPUCC_PATH_ESCAPES_ROOT', `path ${JSON.stringify(relPath)} leaves the host root`, {
      hint: 'this is a bug, a hostile name or a symlink loop: paths are built only from validated names',
      details: { path: relPath, root: this.root },
    });
  }

  /** Reads a text attribute; throws when it is missing. */
  read(relPath: string): string {
    const value = this.readOptional(relPath);
    if (value === undefined) {
      throw new GpuccError('ERR_GPUCC_SYSFS_READ', `cannot read ${this.display(relPath)}: it does not exist`, {
        hint: 'the device or attribute is gone; re-run discovery',
        details: { path: relPath, errno: 'ENOENT' },
      });
    }
    return value;
  }

  /** Reads a text attribute; undefined when it does not exist (optional attributes). */
  readOptional(relPath: string): string | undefined {
    const abs = this.resolve(relPath, true);
    this.recorder.recordRead(relPath);
    try {
      this.kernel?.checkRead?.(relPath);
      return localFs.readText(abs);
    } catch (error) {
      if (localFs.isMissing(error)) return undefined;
      throw this.accessError('read', relPath, error);
    }
  }

  /** The target of a symlink as stored, or undefined when there is no link. */
  readlink(relPath: string): string | undefined {
    const abs = this.resolve(relPath);
    this.recorder.recordRead(relPath);
    try {
      return localFs.readLink(abs);
    } catch (error) {
      if (localFs.isMissing(error) || errnoOf(error) === 'EINVAL') return undefined;
      throw this.accessError('readlink', relPath, error);
    }
  }

  /** A symlink's target as a host path relative to the root (checked to stay under it). */
  resolveLink(relPath: string): string | undefined {
    const target = this.readlink(relPath);
    if (target === undefined) return undefined;
    const clean = relPath.replace(/^\/+/, '');
    const joined = path.isAbsolute(target) ? target.slice(1) : path.join(path.dirname(clean), target);
    const normal = path.normalize(joined);
    this.resolve(normal);
    return normal;
  }

  /** Directory entries, sorted; empty when the directory does not exist. */
  readdir(relPath: string): string[] {
    const abs = this.resolve(relPath, true);
    this.recorder.recordRead(relPath);
    try {
      return localFs.listDir(abs).sort();
    } catch (error) {
      if (localFs.isMissing(error)) return [];
      throw this.accessError('readdir', relPath, error);
    }
  }

  exists(relPath: string): boolean {
    return localFs.exists(this.resolve(relPath, true));
  }

  kindOf(relPath: string): localFs.FileKind | undefined {
    return localFs.kindOf(this.resolve(relPath));
  }

  /**
   * Stores a value in a kernel attribute with one write(2), O_WRONLY|O_TRUNC, never creating the file.
   * On a simulated node the kernel simulator performs it. Failures become GpuccErrors carrying the errno.
   */
  async write(relPath: string, value: string, options: WriteOptions = {}): Promise<void> {
    const abs = this.resolve(relPath, true);
    const data = Buffer.from(value);
    const timeoutMs = options.timeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS;
    const kernelPath = KERNEL_PREFIXES.some((prefix) => relPath.replace(/^\/+/, '').startsWith(prefix));
    const device = kernelPath ? deviceOfWrite(this.root, relPath, value) : undefined;
    const earlier = device === undefined ? undefined : blocked.get(device);
    if (earlier) {
      this.recorder.recordWrite(relPath, value, 'blocked');
      throw new GpuccError(
        'ERR_GPUCC_DEVICE_BLOCKED',
        `not writing ${JSON.stringify(value)} to ${this.display(relPath)}: writing ${JSON.stringify(earlier.value)} to ${this.display(earlier.path)} is still blocked in the kernel (${Math.round((Date.now() - earlier.sinceMs) / 1000)} s)`,
        {
          hint: 'the driver is waiting on something that holds the device (a process, a VM, a kernel client); free it: the blocked write then completes and the next reconcile goes on',
          details: { path: relPath, value, blockedPath: earlier.path, blockedValue: earlier.value },
        },
      );
    }
    // A kernel store can block (a driver waiting on a holder): never on this process's threadpool.
    const store =
      this.kernel && kernelPath
        ? this.kernel.write(relPath, data)
        : kernelPath
          ? writeAttributeBlocking(abs, data)
          : localFs.writeAttribute(abs, data);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    try {
      const outcome = await Promise.race([store.then(() => 'ok' as const), deadline]);
      if (outcome === 'timeout') {
        // The kernel may still finish it later; until then no new store goes to that device.
        if (device !== undefined) {
          blocked.set(device, { path: relPath, value, sinceMs: Date.now() });
          const settled = () => blocked.delete(device);
          store.then(settled, settled);
        } else store.catch(() => {});
        this.recorder.recordWrite(relPath, value, 'timeout');
        throw new GpuccError(
          'ERR_GPUCC_SYSFS_WRITE_TIMEOUT',
          `writing ${JSON.stringify(value)} to ${this.display(relPath)} did not return within ${timeoutMs} ms`,
          {
            hint: 'the driver is busy (a process or VM holds the device); free it, then retry',
            details: { path: relPath, value, timeoutMs },
          },
        );
      }
      this.recorder.recordWrite(relPath, value, 'ok');
    } catch (error) {
      if (isGpuccError(error)) throw error;
      this.recorder.recordWrite(relPath, value, errnoOf(error) ?? 'error');
      throw this.accessError('write', relPath, error, value);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Writes a regular file (state, spec, marker) atomically; see host-fs `writeFileAtomic`. */
  async writeFileAtomic(
    relPath: string,
    content: string | Uint8Array,
    mode = 0o644,
  ): Promise<localFs.AtomicWriteResult> {
    const abs = this.resolve(relPath);
    const data = typeof content === 'string' ? Buffer.from(content) : content;
    try {
      localFs.makeDir(path.dirname(abs), 0o755);
      const result = await localFs.writeFileAtomic(abs, data, mode);
      if (result === 'written') this.recorder.recordWrite(relPath, `<${data.length} bytes>`, 'ok');
      return result;
    } catch (error) {
      if (error instanceof localFs.SymlinkTargetError) {
        throw new GpuccError(
          'ERR_GPUCC_TARGET_IS_SYMLINK',
          `refusing to replace ${this.display(relPath)}: it is a symlink`,
          {
            hint: 'remove the symlink or point the tool at the real directory',
            details: { path: relPath },
          },
        );
      }
      throw new GpuccError(
        'ERR_GPUCC_ATOMIC_WRITE_FAILED',
        `cannot write ${this.display(relPath)}: ${messageOf(error)}`,
        {
          hint: 'check that the directory is writable and the disk is not full; the previous file was kept',
          cause: error,
          details: { path: relPath, errno: errnoOf(error) },
        },
      );
    }
  }

  /**
   * Removes the temp files that writeFileAtomic leaves beside `relPath` when its process is killed
   * mid-write (`.<name>.<pid>.<hex>.tmp`): all of them for a caller that holds the file's lock (no
   * other writer runs), else only those older than `olderThanMs` (a live write takes milliseconds).
   * Returns how many were removed.
   */
  async removeStaleTempFiles(relPath: string, options: { olderThanMs?: number } = {}): Promise<number> {
    const dir = path.posix.dirname(relPath.replace(/^\/+/, ''));
    const pattern = new RegExp(`^\\.${escapeRegExp(path.posix.basename(relPath))}\\.\\d+\\.[0-9a-f]+\\.tmp$`);
    let removed = 0;
    for (const name of this.readdir(dir)) {
      if (!pattern.test(name)) continue;
      const temp = `${dir}/${name}`;
      const age = options.olderThanMs === undefined ? undefined : localFs.ageMs(this.resolve(temp));
      if (age !== undefined && age < options.olderThanMs!) continue;
      if (await this.removeFile(temp)) removed++;
    }
    return removed;
  }

  /** Removes a regular file; false when it was not there. */
  async removeFile(relPath: string): Promise<boolean> {
    const abs = this.resolve(relPath);
    try {
      const removed = await localFs.removeFile(abs);
      if (removed) this.recorder.recordWrite(relPath, '<unlink>', 'ok');
      return removed;
    } catch (error) {
      throw this.accessError('remove', relPath, error);
    }
  }

  /** A stamp that changes when the file is replaced or rewritten (localFs.fileStamp); undefined when absent. */
  stamp(relPath: string): string | undefined {
    return localFs.fileStamp(this.resolve(relPath));
  }

  /** Whether a server accepts connections on the unix socket (false for one left by a killed process). */
  socketHasListener(relPath: string, timeoutMs?: number): Promise<boolean> {
    return localFs.socketHasListener(this.resolve(relPath), timeoutMs);
  }

  /** Watches a directory for entries appearing or vanishing; returns a closer. */
  watchDir(relPath: string, onChange: (name: string | null) => void): () => void {
    return localFs.watchDir(this.resolve(relPath, true), onChange);
  }

  /** A path as the user knows it on the host (`/sys/...`), with the root shown when it is not `/`. */
  display(relPath: string): string {
    const clean = `/${relPath.replace(/^\/+/, '')}`;
    return this.root === '/' ? clean : `${clean} (under ${this.root})`;
  }

  private accessError(op: string, relPath: string, error: unknown, value?: string): GpuccError {
    const errno = errnoOf(error);
    const what =
      value === undefined
        ? `${op} ${this.display(relPath)}`
        : `write ${JSON.stringify(value)} to ${this.display(relPath)}`;
    const details = { path: relPath, errno, ...(value === undefined ? {} : { value }) };
    if (errno === 'EACCES' || errno === 'EPERM' || errno === 'EROFS') {
      return new GpuccError('ERR_GPUCC_PERMISSION_DENIED', `cannot ${what}: ${errno}`, {
        hint:
          errno === 'EROFS'
            ? 'the host /sys is mounted read-only; mount it read-write for this operand'
            : 'run as root (or with CAP_SYS_ADMIN) and check the attribute is readable/writable at all',
        cause: error,
        details,
      });
    }
    if (op === 'write' && localFs.isMissing(error)) {
      return new GpuccError('ERR_GPUCC_ATTRIBUTE_MISSING', `cannot ${what}: the attribute does not exist`, {
        hint: 'the device, driver or kernel feature is absent; gpucc never creates sysfs files',
        cause: error,
        details: { ...details, errno: 'ENOENT' },
      });
    }
    const code = op === 'write' ? 'ERR_GPUCC_SYSFS_WRITE' : 'ERR_GPUCC_SYSFS_READ';
    return new GpuccError(code, `cannot ${what}: ${errno ?? messageOf(error)}`, {
      hint:
        op === 'write'
          ? 'the kernel refused the write; see the errno and the kernel log (dmesg)'
          : 'check the host root and the file',
      cause: error,
      details,
    });
  }
}

const PCI_DEVICES = 'sys/bus/pci/devices';

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Why `abs` is not a directory this process can read, or undefined when it is one. */
function dirProblem(abs: string): { text: string; errno?: string } | undefined {
  try {
    const kind = localFs.probeReadable(abs);
    return kind === 'dir' ? undefined : { text: `is a ${kind === 'char' ? 'device node' : kind}, not a directory` };
  } catch (error) {
    const errno = errnoOf(error);
    const text =
      errno === 'ENOENT' || errno === 'ENOTDIR'
        ? 'does not exist'
        : errno === 'ELOOP'
          ? 'is a symlink loop (ELOOP)'
          : errno === 'EACCES' || errno === 'EPERM'
            ? `cannot be read: permission denied (${errno})`
            : `cannot be opened: ${errno ?? messageOf(error)}`;
    return { text, ...(errno ? { errno } : {}) };
  }
}

function invalidHostRoot(root: string, message: string, errno?: string, missing?: string): GpuccError {
  return new GpuccError('ERR_GPUCC_HOST_ROOT_INVALID', message, {
    hint:
      errno === 'EACCES' || errno === 'EPERM'
        ? 'run as root, or mount the host readable for this operand'
        : 'pass --host-root (GPUCC_HOST_ROOT) pointing at / , the mounted host (/host) or a simulated node',
    details: { hostRoot: root, ...(errno ? { errno } : {}), ...(missing ? { path: missing } : {}) },
  });
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
