import { type CcMode, isGpuccError, type LockdownMode } from '@gpucc/hal';
import type { DeviceModes } from '../backend/backend.js';
import type { GpuAdminToolsBackend } from '../backend/gpu-admin-tools.js';
import { isFreeForCcTool } from '../devices.js';
import type { DoctorDevice } from './observe.js';

/**
 * The doctor's firmware probe: whether each device's firmware supports the mode asked for can only be
 * learnt from the device, through gpu-admin-tools (docs/facts/cc-tools.md#gpu-admin-tools-messages). Read-only: the
 * backend's queries (`--query-cc-mode`, and for ppcie `--query-ppcie-mode --query-ppcie-settings`),
 * never a knob write or a reset, and never on a device a host driver holds.
 */

/** How the doctor reaches gpu-admin-tools. */
export interface DoctorTools {
  backend: Pick<GpuAdminToolsBackend, 'probeFirmware'>;
  /** The script (nvidia_gpu_tools.py), for messages. */
  tool: string;
  /** Whether the script exists; without it the check cannot be made. */
  found: boolean;
  /** Deadline of the whole probe (every call of it), in ms. */
  deadlineMs: number;
}

export type FirmwareAnswer =
  | { device: DoctorDevice; result: 'supported'; modes: DeviceModes }
  | { device: DoctorDevice; result: 'lacks'; what: 'cc' | 'ppcie'; toolSaid: string }
  | { device: DoctorDevice; result: 'unreadable'; error: string };

/** What the probe found; plain data, judged by the pure `checkFirmware`. */
export type FirmwareObservation =
  /** Nothing to ask (mode off, or no device with the capability by its ID). */
  | { state: 'not-needed'; reason: string }
  | { state: 'no-tool'; tool: string }
  /** Kernel lockdown denies the tool's BAR mapping: it is not run (the lockdown check fails). */
  | { state: 'locked-down'; tool: string; lockdown: Exclude<LockdownMode, 'none'> }
  | { state: 'timed-out'; tool: string; deadlineMs: number; held: DoctorDevice[] }
  | { state: 'asked'; tool: string; answers: FirmwareAnswer[]; held: DoctorDevice[] };

/** The devices whose firmware the mode needs: CC-capable GPUs; for ppcie also every PPCIe-capable device. */
export function firmwareDevices(devices: readonly DoctorDevice[], mode: CcMode): DoctorDevice[] {
  if (mode === 'off') return [];
  return devices.filter((d) => (d.kind === 'gpu' && d.ccCapable) || (mode === 'ppcie' && d.ppcieCapable));
}

export async function probeFirmware(
  devices: readonly DoctorDevice[],
  mode: CcMode,
  tools: DoctorTools,
  lockdown?: Exclude<LockdownMode, 'none'>,
): Promise<FirmwareObservation> {
  if (mode === 'off') return { state: 'not-needed', reason: 'mode off needs no CC firmware' };
  const relevant = firmwareDevices(devices, mode);
  if (relevant.length === 0) {
    return { state: 'not-needed', reason: 'no device has the mode by its PCI ID (see cc-capability)' };
  }
  if (!tools.found) return { state: 'no-tool', tool: tools.tool };
  if (lockdown) return { state: 'locked-down', tool: tools.tool, lockdown };
  // A host driver uses the device (and its FSP): the tool is not run on it (README: no mode is changed
  // under a host driver; the firmware probe talks to the FSP as a switch does).
  const held = relevant.filter((d) => !isFreeForCcTool(d.driver));
  const free = relevant.filter((d) => isFreeForCcTool(d.driver));
  if (free.length === 0) return { state: 'asked', tool: tools.tool, answers: [], held };
  const signal = AbortSignal.timeout(tools.deadlineMs);
  let replies: Awaited<ReturnType<DoctorTools['backend']['probeFirmware']>>;
  try {
    replies = await tools.backend.probeFirmware(free, { cc: true, ppcie: mode === 'ppcie' }, signal);
  } catch (error) {
    if (signal.aborted) return { state: 'timed-out', tool: tools.tool, deadlineMs: tools.deadlineMs, held };
    throw error;
  }
  const answers = free.map((device): FirmwareAnswer => {
    const reply = replies.get(device.address);
    if (reply && 'modes' in reply) return { device, result: 'supported', modes: reply.modes };
    if (reply && isGpuccError(reply.error, 'ERR_GPUCC_CC_FIRMWARE_UNSUPPORTED')) {
      const details = reply.error.details as { what?: unknown; toolSaid?: unknown };
      return {
        device,
        result: 'lacks',
        what: details.what === 'ppcie' ? 'ppcie' : 'cc',
        toolSaid: String(details.toolSaid ?? reply.error.message),
      };
    }
    // The tool's own words when it gave some (the full message repeats the command line).
    const words = reply?.error.details.toolSaid;
    return {
      device,
      result: 'unreadable',
      error: reply
        ? `${reply.error.code}: ${typeof words === 'string' && words ? words : reply.error.message}`
        : 'no answer from gpu-admin-tools',
    };
  });
  return { state: 'asked', tool: tools.tool, answers, held };
}
