import { watchDirs } from '@gpucc/daemon';
import { DEVICE_PLUGIN_DIR, type HostRoot } from '@gpucc/hal';

/**
 * The directories whose entries change when the node does, the ones the operands themselves watch:
 * VFIO nodes come and go, specs are rewritten, sockets and the checkpoint change, state files and the
 * readiness marker are replaced. sysfs attributes and proc/ send no events on a real host, so a
 * periodic poll covers them (and anything a watch missed).
 */
export const WATCHED_DIRS = [
  'dev/vfio',
  'dev/vfio/devices',
  'var/run/cdi',
  'etc/cdi',
  DEVICE_PLUGIN_DIR,
  'var/lib/gpucc',
  'run/gpucc',
  'run/nvidia/validations',
  'sys/bus/pci/drivers/vfio-pci',
] as const;

export interface WatchOptions {
  sysfs: HostRoot;
  /** One frame of the screen (the table, or one JSON document). */
  frame: () => Promise<string>;
  write: (text: string) => void;
  /** A terminal: redraw in place. Otherwise: append what changed, one line each. */
  tty: boolean;
  /** JSON frames: appended whole, on one line each. */
  json: boolean;
  intervalMs: number;
  signal: AbortSignal;
  /** For the appended lines (tests pass a fixed clock). */
  now?: () => Date;
}

// Home, clear to the end of the screen; hide and show the cursor (ECMA-48 / xterm).
const HOME_CLEAR = '\u001b[H\u001b[J';
const HIDE_CURSOR = '\u001b[?25l';
const SHOW_CURSOR = '\u001b[?25h';

/**
 * `gpucc status --watch`: draws once, then again each time a frame differs from the last one, on a
 * watched directory's event (debounced) or the poll. Returns when the signal aborts, leaving the
 * terminal as it was found (cursor shown, nothing half drawn).
 */
export async function watchStatus(options: WatchOptions): Promise<void> {
  const { write, tty, signal } = options;
  const now = options.now ?? (() => new Date());
  let last: string | undefined;
  let running: Promise<void> = Promise.resolve();
  let pending = false;

  const draw = async () => {
    const frame = await options.frame();
    if (frame === last || signal.aborted) return;
    if (tty) write(`${HOME_CLEAR}${frame}`);
    else if (options.json) write(`${JSON.stringify(JSON.parse(frame))}\n`);
    else write(appended(last, frame, now()));
    last = frame;
  };
  // One refresh at a time; events during one ask for exactly one more.
  const refresh = () => {
    if (pending) return;
    pending = true;
    running = running.then(async () => {
      pending = false;
      await draw();
    });
  };

  if (tty) write(HIDE_CURSOR);
  const watches = watchDirs(options.sysfs, () => WATCHED_DIRS, refresh);
  const timer = setInterval(() => {
    watches.refresh(); // directories that appeared since (the first CDI spec, the first VFIO node)
    refresh();
  }, options.intervalMs);
  try {
    refresh();
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener('abort', () => resolve(), { once: true });
    });
    await running;
  } finally {
    clearInterval(timer);
    watches.close();
    if (tty) write(SHOW_CURSOR);
  }
}

/** Not a terminal: the first frame whole, then only the lines that are new, each stamped with the time. */
export function appended(previous: string | undefined, frame: string, at: Date): string {
  const lines = frame.split('\n').filter((l) => l !== '');
  if (previous === undefined) return `${lines.join('\n')}\n`;
  const before = new Set(previous.split('\n'));
  const stamp = at.toISOString();
  const fresh = lines.filter((l) => !before.has(l));
  return fresh.map((l) => `${stamp} ${l}\n`).join('');
}
