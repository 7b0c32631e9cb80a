import path from 'node:path';
import { GpuccError, localFs } from '@gpucc/hal';
import { ccStateFile, FAULTS_FILE, LOCK_DIR, NODE_FILE, TOOLS_CONFIG } from './paths.js';
import type { CcState, NodeSpec } from './spec.js';

/**
 * The simulator's own state beside the tree: node.json (profile, drivers, device specs), one CC state
 * file per CC-capable device, faults and fake-tool settings. Several processes (operands, fake tools,
 * the CLI) share a node, so read-modify-write goes under a lock directory.
 */

export function isSimulatedNode(root: string): boolean {
  return localFs.kindOf(path.join(root, NODE_FILE)) === 'file';
}

export function readNodeSpec(root: string): NodeSpec {
  if (!isSimulatedNode(root)) {
    throw new GpuccError('ERR_GPUCC_SIM_NOT_SIMULATED', `${root} is not a simulated node`, {
      hint: 'create one with: gpucc-sim create DIR --profile hgx-h100-8',
      details: { dir: root },
    });
  }
  return JSON.parse(localFs.readText(path.join(root, NODE_FILE))) as NodeSpec;
}

export function writeNodeSpec(root: string, node: NodeSpec): void {
  writeJsonSync(root, NODE_FILE, node);
}

/** Writes a small JSON state file atomically (temp + rename), so readers in other processes never see half of it. */
export function writeJsonSync(root: string, rel: string, value: unknown): void {
  const abs = path.join(root, rel);
  const temp = `${abs}.${process.pid}.tmp`;
  localFs.writeFileSync(temp, `${JSON.stringify(value, null, 1)}\n`);
  localFs.renameSync(temp, abs);
}

export function readJsonSync<T>(root: string, rel: string, fallback: T): T {
  try {
    return JSON.parse(localFs.readText(path.join(root, rel))) as T;
  } catch (error) {
    if (localFs.isMissing(error)) return fallback;
    throw error;
  }
}

export function readCcState(root: string, address: string): CcState | undefined {
  return readJsonSync<CcState | undefined>(root, ccStateFile(address), undefined);
}

export function writeCcState(root: string, address: string, state: CcState): void {
  writeJsonSync(root, ccStateFile(address), state);
}

// ---- faults -------------------------------------------------------------------------------------

export const FAULT_KINDS = [
  'unbind-hang', // unbind blocks for delayMs (forever when absent), as when a VM holds the device
  'unbind-error', // unbind fails with errno (default EBUSY)
  'bind-error', // bind fails with errno (default EINVAL)
  'devnode-delay', // the /dev/vfio node appears delayMs after a successful bind (udev lag)
  'devnode-never', // the /dev/vfio node never appears
  'reset-error', // reset fails with errno (default EIO)
  'reset-hang', // reset blocks for delayMs (forever when absent)
  'device-gone', // the device vanishes at its next write (ENODEV), as if hot-removed
  'tool-hang', // the fake CC tool never exits
  'tool-error', // the fake CC tool prints an error and exits 1
  'tool-garbage', // the fake CC tool prints output no parser knows
  'cc-stuck', // a reset does not apply the pending CC mode (verification fails)
  'kill-after-writes', // the writing process is killed (SIGKILL) right after its afterWrites-th successful write
  'unbind-lock-held', // the NVIDIA driver never grants /proc/driver/nvidia/gpus/<bdf>/unbindLock (a client holds the GPU)
  'fw-no-cc', // the GPU's firmware (VBIOS) has no CC: the fake CC tool cannot query or configure its CC mode (lasts until cleared)
  'fw-no-ppcie', // the device's firmware is too old for PPCIe: setting it or reading its settings fails (lasts until cleared)
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Faults that are a device's firmware rather than an event: read by the fake CC tool, never used up. */
export const FIRMWARE_FAULT_KINDS: readonly FaultKind[] = ['fw-no-cc', 'fw-no-ppcie'];

export interface Fault {
  kind: FaultKind;
  /** The device it applies to; absent = every device. */
  device?: string;
  errno?: string;
  delayMs?: number;
  /** How many times it fires before it is used up; absent = every time. */
  times?: number;
  /** kill-after-writes: the number of successful writes after which the process dies. */
  afterWrites?: number;
}

export function readFaults(root: string): Fault[] {
  return readJsonSync<Fault[]>(root, FAULTS_FILE, []);
}

export function writeFaults(root: string, faults: Fault[]): void {
  writeJsonSync(root, FAULTS_FILE, faults);
}

// ---- fake tool settings -----------------------------------------------------------------------

export interface ToolSettings {
  /** Start-up cost of one fake tool call (the real tool: about 150 ms). */
  startMs: number;
  /** Knob write per device (about 150 ms on hardware). */
  setMs: number;
  /** Reset + boot wait + verify per device (about 1.7 s on hardware). */
  resetMs: number;
}

export const DEFAULT_TOOL_SETTINGS: ToolSettings = { startMs: 0, setMs: 0, resetMs: 0 };

export function readToolSettings(root: string): ToolSettings {
  return { ...DEFAULT_TOOL_SETTINGS, ...readJsonSync<Partial<ToolSettings>>(root, TOOLS_CONFIG, {}) };
}

export function writeToolSettings(root: string, settings: Partial<ToolSettings>): void {
  writeJsonSync(root, TOOLS_CONFIG, { ...readToolSettings(root), ...settings });
}

// ---- cross-process lock -----------------------------------------------------------------------

const LOCK_STALE_MS = 10_000;
const LOCK_WAIT_MS = 15_000;

const SLEEP_CELL = new Int32Array(new SharedArrayBuffer(4));

/**
 * One attempt at the lock directory: true when taken; a stale lock (a crashed holder) is broken;
 * past the deadline the wait ends with a clear error.
 */
function tryTakeLock(root: string, lock: string, since: number): boolean {
  if (localFs.tryMakeDirExclusive(lock)) return true;
  const age = localFs.ageMs(lock);
  if (age !== undefined && age > LOCK_STALE_MS) {
    localFs.removeSync(lock);
    return false;
  }
  if (Date.now() - since > LOCK_WAIT_MS) {
    throw new GpuccError('ERR_GPUCC_SIM_STATE_LOCKED', `the simulated node ${root} stayed locked`, {
      hint: `another gpucc-sim process holds ${LOCK_DIR}; remove it if no such process runs`,
    });
  }
  return false;
}

/** The synchronous form, for the kernel simulator's bookkeeping inside a single store. */
export function withNodeLockSync<T>(root: string, fn: () => T): T {
  const lock = path.join(root, LOCK_DIR);
  const since = Date.now();
  while (!tryTakeLock(root, lock, since)) Atomics.wait(SLEEP_CELL, 0, 0, 2); // sleep 2 ms without spinning
  try {
    return fn();
  } finally {
    localFs.removeSync(lock);
  }
}

/** Runs `fn` while holding the node's lock (a directory created exclusively; stale locks are broken). */
export async function withNodeLock<T>(root: string, fn: () => T | Promise<T>): Promise<T> {
  const lock = path.join(root, LOCK_DIR);
  const since = Date.now();
  while (!tryTakeLock(root, lock, since)) await new Promise((resolve) => setTimeout(resolve, 2));
  try {
    return await fn();
  } finally {
    localFs.removeSync(lock);
  }
}
