import type { HostRoot } from '@gpucc/hal';

/**
 * The operand-pause protocol (docs/facts/cc-mode.md#operand-pause-protocol): the GPU Operator's DaemonSets select
 * `nvidia.com/gpu.deploy.<operand>: "true"`, so any other value removes their pods for the switch.
 * The mappings are invertible, so a restart finds what to restore in the labels alone. Pure, except
 * the bounded wait at the end.
 */

export const PAUSED = 'paused-for-cc-mode-change';

/**
 * Every operand that uses the GPUs; kata-sandbox-device-plugin included (upstream forgets it:
 * docs/facts/cc-mode.md#upstream-bugs, B4).
 */
export const OPERAND_LABELS = [
  'nvidia.com/gpu.deploy.vfio-manager',
  'nvidia.com/gpu.deploy.vgpu-manager',
  'nvidia.com/gpu.deploy.sandbox-validator',
  'nvidia.com/gpu.deploy.sandbox-device-plugin',
  'nvidia.com/gpu.deploy.vgpu-device-manager',
  'nvidia.com/gpu.deploy.kata-sandbox-device-plugin',
] as const;

/** The device plugins: their sockets vanish when their pods stop, which is what the wait watches. */
export const DEVICE_PLUGIN_LABELS = [
  'nvidia.com/gpu.deploy.sandbox-device-plugin',
  'nvidia.com/gpu.deploy.kata-sandbox-device-plugin',
] as const;

/**
 * The paused value of a label, or undefined to leave it. Absent labels stay absent (upstream writes
 * "" there, creating labels the operator never set), "" and false stay, a paused value stays.
 */
export function pausedValue(current: string | undefined): string | undefined {
  if (current === undefined || current === '' || current === 'false' || current.includes(PAUSED)) return undefined;
  return current === 'true' ? PAUSED : `${current}_${PAUSED}`;
}

/** The value before pausing, or undefined for a label that is not paused. */
export function restoredValue(current: string | undefined): string | undefined {
  if (current === undefined || !current.includes(PAUSED)) return undefined;
  if (current === PAUSED) return 'true';
  return current
    .replaceAll(`_${PAUSED}`, '')
    .replaceAll(PAUSED, '')
    .replace(/^_+|_+$/g, '');
}

function patchFrom(labels: Readonly<Record<string, string>>, map: (v: string | undefined) => string | undefined) {
  const patch: Record<string, string> = {};
  for (const key of OPERAND_LABELS) {
    const value = map(labels[key]);
    if (value !== undefined && value !== labels[key]) patch[key] = value;
  }
  return patch;
}

/** The one patch that pauses every running operand. */
export const pausePatch = (labels: Readonly<Record<string, string>>) => patchFrom(labels, pausedValue);

/** The one patch that restores every paused operand (also after a crash between pause and restore). */
export const restorePatch = (labels: Readonly<Record<string, string>>) => patchFrom(labels, restoredValue);

/** Whether a pause patch stops a device plugin (then its socket is waited for). */
export function pausesDevicePlugin(patch: Readonly<Record<string, string>>): boolean {
  return DEVICE_PLUGIN_LABELS.some((key) => key in patch);
}

export const DEVICE_PLUGIN_DIR = 'var/lib/kubelet/device-plugins';

export interface OperandWait {
  timedOut: boolean;
  waitedMs: number;
  /** Sockets still there when the wait ended. */
  remaining: string[];
}

/**
 * Waits, at most `timeoutMs`, until no live device-plugin socket starting with `prefix` is left in the
 * kubelet's directory: a stopping plugin removes its socket (the sandbox plugin's are `sandbox-*.sock`).
 * A plugin killed with SIGKILL (OOM, a forced pod deletion) leaves its socket file behind with nobody
 * listening: such a leftover counts as gone, or every switch after a crash would wait the whole timeout.
 * It needs no Kubernetes permission beyond nodes (no pod listing). Ends early on abort.
 */
export async function waitForOperands(
  sysfs: HostRoot,
  options: {
    prefix: string;
    timeoutMs: number;
    signal: AbortSignal;
    delay: (ms: number, signal: AbortSignal) => Promise<void>;
    pollMs?: number;
    now?: () => number;
  },
): Promise<OperandWait> {
  const now = options.now ?? Date.now;
  const started = now();
  const sockets = async () => {
    const names = sysfs.readdir(DEVICE_PLUGIN_DIR).filter((n) => n.startsWith(options.prefix) && n.endsWith('.sock'));
    const live = await Promise.all(names.map((n) => sysfs.socketHasListener(`${DEVICE_PLUGIN_DIR}/${n}`)));
    return names.filter((_, i) => live[i]);
  };
  let remaining = await sockets();
  while (remaining.length > 0 && !options.signal.aborted) {
    const waited = now() - started;
    if (waited >= options.timeoutMs) return { timedOut: true, waitedMs: waited, remaining };
    await options.delay(Math.min(options.pollMs ?? 500, options.timeoutMs - waited), options.signal);
    remaining = await sockets();
  }
  return { timedOut: false, waitedMs: now() - started, remaining };
}
