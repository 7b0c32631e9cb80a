import { type CcMode, GpuccError, type HostTee, type PciAddress } from '@gpucc/hal';
import type { BackendName, DeviceModes, SwitchStep } from './backend/backend.js';
import { type CcDevice, ccDeviceOf, hexId, isFreeForCcTool } from './devices.js';
import type { PendingRecord } from './state.js';

/** One device as observed: what it is, what it reports, what cc-manager left pending on it. */
export interface DeviceObservation extends CcDevice {
  modes?: DeviceModes;
  /** Why its modes could not be read (the tool hung, failed, or printed something unknown). */
  queryError?: GpuccError;
  pending?: PendingRecord;
  /** A VM holds it (`qemu-system-x86_64 (pid 1234)`): never queried, switched or reset; `modes` are the last read. */
  heldBy?: string[];
}

export interface Observation {
  tee: HostTee;
  backend: BackendName;
  canSwitch: boolean;
  devices: DeviceObservation[];
}

/**
 * converged: nothing to do. switch: tool calls planned. skipped: a GPU without CC asked for a CC mode
 * (reported, not fatal). unreadable: its modes could not be read, so nothing is decided for it.
 * refused: it needs a switch that must not happen (a host driver owns it, or the backend cannot switch).
 */
export type Decision = 'converged' | 'switch' | 'skipped' | 'unreadable' | 'refused';

export interface PlannedStep {
  /** 1: PPCIe off on every device leaving PPCIe (its own reset); 2: the mode itself. */
  phase: 1 | 2;
  step: SwitchStep;
}

export interface DevicePlan {
  /** The device the steps are for (what the backend is called with). */
  device: CcDevice;
  address: PciAddress;
  kind: 'gpu' | 'nvswitch';
  name: string;
  deviceId: number;
  driver?: string;
  current?: DeviceModes;
  pending?: PendingRecord;
  /** What the device must read after the switch (verified). */
  expect: DeviceModes;
  decision: Decision;
  steps: PlannedStep[];
  reason: string;
  error?: GpuccError;
  heldBy?: string[];
}

export interface Plan {
  mode: CcMode;
  /** The whole node is refused (ppcie on a node where a device lacks it): no tool runs at all. */
  refusal?: GpuccError;
  devices: DevicePlan[];
}

/** What a device must read in a node mode: CC-capable GPUs the CC mode, PPCIe-capable devices PPCIe. */
export function expectedModes(device: CcDevice, mode: CcMode): DeviceModes {
  const modes: DeviceModes = {};
  if (device.kind === 'gpu' && device.ccCapable) modes.cc = mode === 'ppcie' ? 'off' : mode;
  if (device.ppcieCapable) modes.ppcie = mode === 'ppcie' ? 'on' : 'off';
  return modes;
}

export function describeModes(modes: DeviceModes | undefined): string {
  if (!modes) return '?';
  const parts = [...(modes.cc ? [`cc ${modes.cc}`] : []), ...(modes.ppcie ? [`ppcie ${modes.ppcie}`] : [])];
  return parts.length ? parts.join(', ') : '-';
}

function pendingDiffers(pending: PendingRecord | undefined, expect: DeviceModes): boolean {
  if (!pending) return false;
  return (
    (pending.cc !== undefined && pending.cc !== expect.cc) ||
    (pending.ppcie !== undefined && pending.ppcie !== expect.ppcie)
  );
}

const WAIT_FOR_VM_HINT =
  'the switch waits and retries on its own in run mode; stop the VM (or move its pod) to let it go on';

/** The tool calls that take a device from what it reads (and has pending) to `mode`. */
function stepsFor(d: DeviceObservation, mode: CcMode, modes: DeviceModes): PlannedStep[] {
  const pending = d.pending;
  if (mode === 'ppcie') {
    // CC off and PPCIe on in one call: the per-GPU phase sets the CC knobs, the one reset applies both.
    return [{ phase: 2, step: d.kind === 'gpu' ? { cc: 'off', ppcie: 'on' } : { ppcie: 'on' } }];
  }
  const steps: PlannedStep[] = [];
  const leavingPpcie = d.ppcieCapable && (modes.ppcie === 'on' || pending?.ppcie === 'on');
  // In PPCIe mode the CC register reads off: turn PPCIe off first, or ppcie → off looks done
  // (upstream B5, docs/facts/cc-mode.md#upstream-bugs).
  if (leavingPpcie) steps.push({ phase: 1, step: { ppcie: 'off' } });
  if (d.kind === 'gpu' && d.ccCapable) {
    const ccWrong = modes.cc !== mode || (pending?.cc !== undefined && pending.cc !== mode);
    if (ccWrong || (leavingPpcie && mode !== 'off')) steps.push({ phase: 2, step: { cc: mode } });
  }
  return steps;
}

/**
 * Decides, per device, what takes the node to `mode`. Pure: an observation in, a plan out; the plan
 * of a converged node has no steps. Refuses `ppcie` as a whole unless every GPU and NVSwitch can
 * take it (docs/facts/cc-mode.md#ppcie-rules), and never plans a switch for a device a host driver owns.
 */
export function planSwitch(mode: CcMode, observation: Observation): Plan {
  const devices = observation.devices.map((d): DevicePlan => {
    const expect = expectedModes(d, mode);
    const base = {
      device: ccDeviceOf(d),
      address: d.address,
      kind: d.kind,
      name: d.name,
      deviceId: d.deviceId,
      ...(d.driver ? { driver: d.driver } : {}),
      ...(d.modes ? { current: d.modes } : {}),
      ...(d.pending ? { pending: d.pending } : {}),
      ...(d.heldBy ? { heldBy: d.heldBy } : {}),
      expect,
      steps: [] as PlannedStep[],
    };
    if (d.kind === 'gpu' && !d.ccCapable) {
      if (mode === 'off' || mode === 'ppcie') {
        return {
          ...base,
          decision: 'converged',
          reason: `no CC mode (device ID ${hexId(d.deviceId)} is not Hopper or Blackwell)`,
        };
      }
      return {
        ...base,
        decision: 'skipped',
        reason: `not CC-capable (device ID ${hexId(d.deviceId)} is not Hopper or Blackwell): left as it is`,
        error: notCapable(d, `${d.address} (${hexId(d.deviceId)}) has no CC mode`),
      };
    }
    if (d.kind === 'nvswitch' && !d.ppcieCapable) {
      return { ...base, decision: 'converged', reason: 'no PPCIe mode (not an NVSwitch gen3)' };
    }
    if (d.heldBy) {
      const last = d.modes;
      const same =
        last !== undefined &&
        (expect.cc === undefined || last.cc === expect.cc) &&
        (expect.ppcie === undefined || last.ppcie === expect.ppcie) &&
        !pendingDiffers(d.pending, expect);
      if (same)
        return {
          ...base,
          decision: 'converged',
          reason: `in use by ${d.heldBy.join(', ')}; last read ${describeModes(last)}`,
        };
      return {
        ...base,
        decision: 'refused',
        reason: `in use by ${d.heldBy.join(', ')}; ${last ? `last read ${describeModes(last)}` : 'its modes were never read'}: waits until the VM lets go`,
        error: new GpuccError(
          'ERR_GPUCC_DEVICE_IN_USE',
          `${d.heldBy.join(', ')} ${d.heldBy.length > 1 ? 'hold' : 'holds'} ${d.address}: its CC mode is not read, switched or reset while a VM has it`,
          {
            hint: WAIT_FOR_VM_HINT,
            details: { device: d.address, holders: d.heldBy },
          },
        ),
      };
    }
    if (d.queryError || !d.modes) {
      return {
        ...base,
        decision: 'unreadable',
        reason: 'its modes could not be read',
        ...(d.queryError ? { error: d.queryError } : {}),
      };
    }
    const modes = d.modes;
    const wrong =
      (expect.cc !== undefined && modes.cc !== expect.cc) ||
      (expect.ppcie !== undefined && modes.ppcie !== expect.ppcie) ||
      pendingDiffers(d.pending, expect);
    if (!wrong) return { ...base, decision: 'converged', reason: `already ${describeModes(expect)}` };
    const steps = stepsFor(d, mode, modes);
    const why =
      pendingDiffers(d.pending, expect) && describeModes(modes) === describeModes(expect)
        ? `reads ${describeModes(modes)} but holds knobs set earlier that a reset would apply`
        : `reads ${describeModes(modes)}, must be ${describeModes(expect)}`;
    if (!observation.canSwitch) {
      return {
        ...base,
        steps,
        decision: 'refused',
        reason: `${why}; the ${observation.backend} backend cannot switch`,
        error: new GpuccError(
          'ERR_GPUCC_CC_BACKEND_CANNOT_SWITCH',
          `${observation.backend} can read the CC mode but never switch it`,
          {
            hint: 'install gpu-admin-tools and use --backend gpu-admin-tools (or auto), with --gpu-admin-tools PATH',
            details: { device: d.address },
          },
        ),
      };
    }
    if (!isFreeForCcTool(d.driver)) {
      return {
        ...base,
        steps,
        decision: 'refused',
        reason: `${why}; bound to ${d.driver}`,
        error: new GpuccError(
          'ERR_GPUCC_DEVICE_HELD_BY_HOST_DRIVER',
          `${d.address} is bound to ${d.driver}, which uses it: its CC mode is not changed under a host driver`,
          {
            hint: 'bind it to VFIO (vfio-manager bind) or unbind it, then retry; cc-manager retries on its own in run mode',
            details: { device: d.address, driver: d.driver },
          },
        ),
      };
    }
    return { ...base, steps, decision: 'switch', reason: why };
  });

  const refusal = mode === 'ppcie' ? ppcieRefusal(observation.devices) : undefined;
  return { mode, ...(refusal ? { refusal } : {}), devices: mode === 'ppcie' ? holdBackAll(devices) : devices };
}

/**
 * PPCIe is all or nothing (docs/facts/cc-mode.md#ppcie-in-stages): while a device that must switch
 * cannot (a VM or a host driver holds it, its modes cannot be read), the free ones are not switched
 * or reset either; they wait with it. The code is the blocker's (ERR_GPUCC_DEVICE_IN_USE for a VM).
 */
function holdBackAll(devices: DevicePlan[]): DevicePlan[] {
  const blockers = devices.filter((d) => d.decision === 'refused' || d.decision === 'unreadable');
  if (blockers.length === 0) return devices;
  const held = blockers.find((d) => d.error?.code === 'ERR_GPUCC_DEVICE_IN_USE');
  const code = (held ?? blockers[0]!).error?.code ?? 'ERR_GPUCC_TOOL_FAILED';
  const why = blockers
    .map((d) => `${d.address} (${d.heldBy ? `held by ${d.heldBy.join(', ')}` : d.reason})`)
    .join('; ');
  return devices.map((d) =>
    d.decision !== 'switch'
      ? d
      : {
          ...d,
          decision: 'refused',
          reason: `${d.reason}; waits: ppcie switches every device together, and ${blockers.length} cannot switch now`,
          error: new GpuccError(
            code,
            `${d.address} is not switched to ppcie while ${why} cannot be: PPCIe switches every device or none`,
            {
              hint: held
                ? WAIT_FOR_VM_HINT
                : 'see the blocking device’s error; the switch retries on its own in run mode',
              details: { device: d.address, blockedBy: blockers.map((h) => h.address) },
            },
          ),
        },
  );
}

/**
 * Why `ppcie` cannot be set on these devices, if it cannot: every GPU and NVSwitch must support it
 * (docs/facts/cc-mode.md#ppcie-rules). Decided from the device IDs alone, so no tool runs for a refused request.
 */
export function ppcieRefusal(devices: readonly CcDevice[]): GpuccError | undefined {
  const lacking = devices.filter((d) => !d.ppcieCapable);
  if (lacking.length === 0) return undefined;
  const list = lacking.map((d) => `${d.address} (${d.kind} ${d.name} ${hexId(d.deviceId)})`).join(', ');
  return new GpuccError(
    'ERR_GPUCC_CC_NOT_CAPABLE',
    `ppcie needs every GPU and NVSwitch to support Protected PCIe, and ${lacking.length} do not: ${list}`,
    {
      hint: lacking.some((d) => d.arch === 'blackwell')
        ? 'Blackwell uses NVLink encryption for multi-GPU CC: use mode on'
        : 'PPCIe is for Hopper GPUs with NVSwitch gen3; use mode on',
      details: { devices: lacking.map((d) => d.address) },
    },
  );
}

function notCapable(d: CcDevice, message: string): GpuccError {
  return new GpuccError('ERR_GPUCC_CC_NOT_CAPABLE', message, {
    hint: 'only Hopper and Blackwell GPUs have a CC mode; pass --cc-capable-ids if this device ID is capable',
    details: { device: d.address, deviceId: hexId(d.deviceId) },
  });
}

export const toSwitch = (plan: Plan) => plan.devices.filter((d) => d.decision === 'switch');

/** Nothing left to do and nothing in the way: every device converged (or skipped, reported). */
export function isConverged(plan: Plan): boolean {
  return !plan.refusal && plan.devices.every((d) => d.decision === 'converged' || d.decision === 'skipped');
}
