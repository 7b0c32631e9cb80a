/**
 * The node's CC mode as cc-manager last applied it, kept under the host root so that the device
 * plugin (which has no Kubernetes client and may not import cc-manager) can follow the rules of the
 * mode in force (docs/facts/cc-topology.md#the-rules). cc-manager writes it next to its labels: the
 * state it wrote to `nvidia.com/cc.mode.state`, and while a switch is in progress the mode it is
 * going to. Readers rely on exactly the fields below (documented in the cc-manager README).
 */

import { GpuccError } from '../errors/index.js';
import type { HostRoot } from '../fs/host-root.js';
import { type CcMode, isCcMode } from '../types/cc-mode.js';

/** Host path, relative to the root. */
export const CC_NODE_STATE_FILE = 'var/lib/gpucc/cc-mode.json';

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

export interface CcNodeState {
  version: 1;
  /** The state cc-manager last wrote to `nvidia.com/cc.mode.state`; `unknown` before its first (during a first switch). */
  state: CcModeState | 'unknown';
  /** ISO time that state was written. */
  since: string;
  /** Present while a switch is in progress: devices may be resetting, the mode is about to change. */
  switching?: CcSwitching;
}

const isState = (v: unknown): v is CcModeState => v === 'failed' || isCcMode(v);

/** The record, or undefined when cc-manager has written none. Throws ERR_GPUCC_STATE_FILE_INVALID. */
export function readCcNodeState(sysfs: HostRoot): CcNodeState | undefined {
  const text = sysfs.readOptional(CC_NODE_STATE_FILE);
  if (text === undefined) return undefined;
  try {
    const parsed = JSON.parse(text) as Partial<CcNodeState> | null;
    const switching = parsed?.switching;
    if (
      parsed?.version !== 1 ||
      (parsed.state !== 'unknown' && !isState(parsed.state)) ||
      typeof parsed.since !== 'string' ||
      (switching !== undefined &&
        (!isCcMode(switching?.to) ||
          (switching.from !== 'unknown' && !isState(switching.from)) ||
          typeof switching.since !== 'string'))
    )
      throw new Error('unexpected shape');
    return parsed as CcNodeState;
  } catch (error) {
    throw new GpuccError(
      'ERR_GPUCC_STATE_FILE_INVALID',
      `${sysfs.display(CC_NODE_STATE_FILE)} is not a valid cc-manager mode record`,
      {
        hint: 'cc-manager rewrites it at its next reconcile; remove it if it was edited by hand',
        cause: error,
        details: { path: CC_NODE_STATE_FILE },
      },
    );
  }
}

/** Writes the record atomically; nothing is written when state and switch are what the file already says. */
export async function writeCcNodeState(sysfs: HostRoot, next: Omit<CcNodeState, 'version'>): Promise<void> {
  let current: CcNodeState | undefined;
  try {
    current = readCcNodeState(sysfs);
  } catch {
    current = undefined; // an unreadable record is replaced by the truth
  }
  if (
    current !== undefined &&
    current.state === next.state &&
    current.switching?.to === next.switching?.to &&
    (current.switching === undefined) === (next.switching === undefined)
  )
    return;
  const record: CcNodeState = { version: 1, ...next };
  await sysfs.writeFileAtomic(CC_NODE_STATE_FILE, `${JSON.stringify(record, null, 2)}\n`, 0o644);
}
