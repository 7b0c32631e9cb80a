/**
 * cc-manager's CC mode record, its one file under the host root (`var/lib/gpucc/cc-mode.json`) for the
 * readers that may not import it: the device plugin follows the node's mode in force
 * (docs/facts/cc-topology.md#the-rules), `gpucc status` shows each device's mode (only cc-manager
 * runs the CC tools). One document, two parts written at different moments of a reconcile:
 *
 *   { "version": 1,
 *     "state": "on", "since": "<ISO>", "switching": { "from", "to", "since" },  // the node
 *     "devices": { "<PCI address>": { "cc", "ppcie", "desired" } } }             // each GPU/NVSwitch
 *
 * The node part is what cc-manager last wrote to `nvidia.com/cc.mode.state` (absent before its
 * first) and, while a switch runs, the mode it goes to. Every write goes through `updateCcModeRecord`,
 * which reads, changes and writes atomically one part at a time, queued per file, so that the two
 * parts written concurrently by one cc-manager never lose each other. Fields documented in the
 * cc-manager README. Across processes (`cc-manager set` beside the daemon) a host lock orders them.
 */

import { GpuccError } from '../errors/index.js';
import { acquireHostLock } from '../fs/host-lock.js';
import type { HostRoot } from '../fs/host-root.js';
import * as localFs from '../fs/local-fs.js';
import { type CcMode, isCcMode } from '../types/cc-mode.js';

/** Host path, relative to the root. */
export const CC_MODE_RECORD_FILE = 'var/lib/gpucc/cc-mode.json';

/**
 * The host-wide lock of its writers: `cc-manager set` in a shell and the cc-manager daemon are two
 * processes, and the in-process queue below orders only one process's writes.
 */
export const CC_MODE_RECORD_LOCK = 'var/lib/gpucc/cc-mode.lock';
const LOCK_TIMEOUT_MS = 10_000;

/** What `nvidia.com/cc.mode.state` says: a mode, or `failed`. */
export type CcModeState = CcMode | 'failed';

export interface CcSwitching {
  /** The state before the switch began. */
  from: CcModeState | 'unknown';
  /** The mode being applied. */
  to: CcMode;
  /** ISO time the switch began (operands paused). */
  since: string;
}

/** The node part, as the device plugin reads it. */
export interface CcNodeState {
  version: 1;
  /** The state cc-manager last wrote to `nvidia.com/cc.mode.state`; `unknown` before its first (during a first switch). */
  state: CcModeState | 'unknown';
  /** ISO time that state was written. */
  since: string;
  /** Present while a switch is in progress: devices may be resetting, the mode is about to change. */
  switching?: CcSwitching;
}

/** One device's modes as cc-manager last read or verified them. */
export interface CcModesRecord {
  /** As the CC tool read it (`on`, `off`, `devtools`...); absent for a device without CC (an NVSwitch). */
  cc?: string;
  /** As the CC tool read it (`on`, `off`); absent for a device without PPCIe. */
  ppcie?: string;
  /** The node mode cc-manager was converging on when it recorded this (its label, or `set`'s argument). */
  desired?: CcMode;
}

/** The whole file: the node part is absent until cc-manager first writes a state. */
export interface CcModeRecord extends Partial<Omit<CcNodeState, 'version'>> {
  version: 1;
  /** Keyed by PCI address, in address order. */
  devices: Record<string, CcModesRecord>;
}

const isState = (v: unknown): v is CcModeState => v === 'failed' || isCcMode(v);

function validNode(r: Partial<CcNodeState>): boolean {
  if (r.state === undefined) return r.since === undefined && r.switching === undefined;
  const s = r.switching;
  return (
    (r.state === 'unknown' || isState(r.state)) &&
    typeof r.since === 'string' &&
    (s === undefined || (isCcMode(s?.to) && (s.from === 'unknown' || isState(s.from)) && typeof s.since === 'string'))
  );
}

/** The whole record, or undefined when cc-manager has written none. Throws ERR_GPUCC_STATE_FILE_INVALID. */
export function readCcModeRecord(sysfs: HostRoot): CcModeRecord | undefined {
  const text = sysfs.readOptional(CC_MODE_RECORD_FILE);
  if (text === undefined) return undefined;
  try {
    const parsed = JSON.parse(text) as Partial<CcModeRecord> | null;
    const devices = parsed?.devices ?? {};
    if (parsed?.version !== 1 || typeof devices !== 'object' || devices === null || !validNode(parsed))
      throw new Error('unexpected shape');
    return { ...parsed, version: 1, devices };
  } catch (error) {
    throw new GpuccError(
      'ERR_GPUCC_STATE_FILE_INVALID',
      `${sysfs.display(CC_MODE_RECORD_FILE)} is not a valid cc-manager mode record`,
      {
        hint: 'cc-manager rewrites it at its next reconcile; remove it if it was edited by hand',
        cause: error,
        details: { path: CC_MODE_RECORD_FILE },
      },
    );
  }
}

/** The node part, or undefined before cc-manager first wrote a state. Throws ERR_GPUCC_STATE_FILE_INVALID. */
export function readCcNodeState(sysfs: HostRoot): CcNodeState | undefined {
  const record = readCcModeRecord(sysfs);
  if (record?.state === undefined || record.since === undefined) return undefined;
  const { state, since, switching } = record;
  return { version: 1, state, since, ...(switching === undefined ? {} : { switching }) };
}

/**
 * The node part for a reader that asks often (the device plugin, at every Allocate): the file is read
 * again only when its stamp changed (the atomic writer's rename gives it a new inode), and its path is
 * resolved under the root once, then again after `refresh()` (a link on the way may change). Before,
 * the resolve (a lstat per path component) and the read took 70% of an Allocate. An unchanged stamp
 * returns the same object (or throws the same error), so callers can memoize on it. `refresh()` (each
 * resync) drops everything: whatever a stamp could miss lasts one resync at most.
 */
export class CcNodeStateReader {
  private abs: string | undefined;
  private stamp: string | undefined;
  private last: { state: CcNodeState | undefined } | { error: unknown } | undefined;

  constructor(private readonly sysfs: HostRoot) {}

  refresh(): void {
    this.abs = undefined;
    this.last = undefined;
  }

  read(): CcNodeState | undefined {
    this.abs ??= this.sysfs.resolve(CC_MODE_RECORD_FILE, true);
    const stamp = localFs.fileStamp(this.abs);
    if (this.last === undefined || stamp !== this.stamp) {
      this.stamp = stamp;
      try {
        this.last = { state: readCcNodeState(this.sysfs) };
      } catch (error) {
        this.last = { error };
      }
    }
    if ('error' in this.last) throw this.last.error;
    return this.last.state;
  }
}

/** Each device's modes as cc-manager last recorded them; none without a record. */
export function readCcModes(sysfs: HostRoot): Record<string, CcModesRecord> {
  return readCcModeRecord(sysfs)?.devices ?? {};
}

/** The tail of the writes queued per file (absolute path): one at a time, each on the last one's result. */
const queues = new Map<string, Promise<void>>();

/**
 * The one writer: reads the record (an unreadable one counts as none: it is replaced by the truth),
 * lets `change` return the next one, or undefined for no write, and writes it atomically. Queued per
 * file so that a concurrent update starts from this one's result instead of overwriting it.
 */
export function updateCcModeRecord(
  sysfs: HostRoot,
  change: (current: CcModeRecord | undefined) => CcModeRecord | undefined,
): Promise<void> {
  const key = `${sysfs.root}/${CC_MODE_RECORD_FILE}`;
  const run = async (): Promise<void> => {
    const lock = await acquireHostLock(sysfs, CC_MODE_RECORD_LOCK, {
      timeoutMs: LOCK_TIMEOUT_MS,
      owner: 'the CC mode record',
    });
    try {
      let current: CcModeRecord | undefined;
      try {
        current = readCcModeRecord(sysfs);
      } catch {
        current = undefined;
      }
      const next = change(current);
      if (next === undefined) return;
      const devices = Object.fromEntries(Object.entries(next.devices).sort(([a], [b]) => (a < b ? -1 : 1)));
      await sysfs.writeFileAtomic(CC_MODE_RECORD_FILE, `${JSON.stringify({ ...next, devices }, null, 2)}\n`, 0o644);
    } finally {
      await lock.release();
    }
  };
  const done = (queues.get(key) ?? Promise.resolve()).then(run);
  const tail = done.catch(() => undefined);
  queues.set(key, tail);
  void tail.then(() => {
    if (queues.get(key) === tail) queues.delete(key);
  });
  return done;
}

/** Writes the node part; nothing is written when state and switch are what the file already says. */
export function writeCcNodeState(sysfs: HostRoot, next: Omit<CcNodeState, 'version'>): Promise<void> {
  return updateCcModeRecord(sysfs, (current) => {
    if (
      current?.state === next.state &&
      current.switching?.to === next.switching?.to &&
      (current.switching === undefined) === (next.switching === undefined)
    )
      return undefined;
    const { state, since, switching } = next;
    return {
      version: 1,
      state,
      since,
      ...(switching === undefined ? {} : { switching }),
      devices: current?.devices ?? {},
    };
  });
}

/**
 * Writes the device part from what `change` makes of the current devices (a copy); the node part is kept.
 */
export function writeCcModes(
  sysfs: HostRoot,
  change: Record<string, CcModesRecord> | ((current: Record<string, CcModesRecord>) => Record<string, CcModesRecord>),
): Promise<void> {
  return updateCcModeRecord(sysfs, (current) => {
    const devices = typeof change === 'function' ? change({ ...(current?.devices ?? {}) }) : change;
    return { ...current, version: 1, devices };
  });
}
