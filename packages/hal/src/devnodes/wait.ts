import path from 'node:path';
import { GpuccError } from '../errors/index.js';
import type { HostRoot } from '../fs/index.js';

export interface WaitForPathOptions {
  /** true: wait until the path exists; false: until it is gone. */
  present: boolean;
  timeoutMs: number;
  /** Safety-net polling interval (default 100 ms); the directory watch usually answers first. */
  pollMs?: number;
  signal?: AbortSignal;
  /**
   * Checked with every look: an error ends the wait at once with that error, for a node that can no
   * longer come (its device left the VFIO driver while we waited), instead of at the deadline.
   */
  giveUpIf?: () => GpuccError | undefined;
}

const DEFAULT_POLL_MS = 100;

/**
 * Resolves as soon as a host path appears (or vanishes). Watches the parent directory and also polls,
 * because the parent may not exist yet (`/dev/vfio/devices` appears with the first cdev) and a watch
 * can miss events. Rejects with ERR_GPUCC_DEVICE_NODE_TIMEOUT at the deadline, or with the signal's
 * reason on abort. Every timer, watcher and listener is released when it settles.
 */
export function waitForPath(sysfs: HostRoot, relPath: string, options: WaitForPathOptions): Promise<void> {
  const { present, timeoutMs } = options;
  const pollMs = options.pollMs ?? DEFAULT_POLL_MS;
  const parent = path.posix.dirname(relPath.replace(/^\/+/, ''));
  const done = () => sysfs.exists(relPath) === present;

  return new Promise<void>((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(options.signal.reason);
      return;
    }
    if (done()) {
      resolve();
      return;
    }

    let closeWatch: (() => void) | undefined;
    let settled = false;
    const finish = (error?: unknown) => {
      if (settled) return;
      settled = true;
      clearInterval(poller);
      clearTimeout(deadline);
      closeWatch?.();
      options.signal?.removeEventListener('abort', onAbort);
      if (error === undefined) resolve();
      else reject(error);
    };
    const check = () => {
      if (settled) return;
      if (done()) return finish();
      const hopeless = options.giveUpIf?.();
      if (hopeless) return finish(hopeless);
      armWatch();
    };
    // Watch the parent once it exists; until then polling alone notices it.
    const armWatch = () => {
      if (closeWatch !== undefined || sysfs.kindOf(parent) !== 'dir') return;
      try {
        closeWatch = sysfs.watchDir(parent, check);
      } catch {
        closeWatch = () => {}; // a directory we cannot watch: polling still works
      }
    };
    const onAbort = () => finish(options.signal?.reason);

    const poller = setInterval(check, pollMs);
    const deadline = setTimeout(() => {
      if (done()) {
        finish();
        return;
      }
      finish(
        new GpuccError(
          'ERR_GPUCC_DEVICE_NODE_TIMEOUT',
          `${sysfs.display(relPath)} did not ${present ? 'appear' : 'vanish'} within ${timeoutMs} ms`,
          {
            hint: present
              ? 'check that the device is bound to a VFIO driver (vfio-pci) and that udev is running (udevadm settle)'
              : 'a process or VM still holds the device, or udev has not removed the node; check the VFIO driver binding',
            details: { path: relPath, present, timeoutMs },
          },
        ),
      );
    }, timeoutMs);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    armWatch();
    check(); // the path may have changed between the first test and the watch
  });
}
