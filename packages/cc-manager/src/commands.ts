import type { ProgressSink } from '@gpucc/daemon';
import { behindVmdError, type CcMode, GpuccError, type HostTee, isVmdDomainAddress, parsePciAddress } from '@gpucc/hal';
import { type ApplyReport, applyPlan } from './apply.js';
import type { BackendName, DeviceModes } from './backend/backend.js';
import type { Arch } from './capability.js';
import type { Context } from './context.js';
import { hexId } from './devices.js';
import { observe } from './observe.js';
import { describeModes, expectedModes, type Observation, type Plan, planSwitch, toSwitch } from './plan.js';
import type { PendingRecord } from './state.js';

export interface DeviceStatus {
  address: string;
  kind: 'gpu' | 'nvswitch';
  name: string;
  deviceId: string;
  arch: Arch;
  driver: string | null;
  ccCapable: boolean;
  ppcieCapable: boolean;
  ccMode: string | null;
  ppcieMode: string | null;
  /** Knobs cc-manager set that no verified reset has applied yet: active after the next reset. */
  pending: PendingRecord | null;
  /** A VM holds it (`qemu-system-x86_64 (pid 1234)`): not queried; the modes shown are the last read, if any. */
  inUseBy: string[] | null;
  error: Record<string, unknown> | null;
}

export interface StatusReport {
  tee: HostTee;
  backend: BackendName;
  canSwitch: boolean;
  capability: { ccIdsOverridden: boolean; ppcieIdsOverridden: boolean };
  /** The node's mode when every capable device agrees, `mixed` when not, `unknown` when one is unreadable. */
  mode: CcMode | 'mixed' | 'unknown' | 'none';
  devices: DeviceStatus[];
}

/** The node mode the devices agree on, if any (pending knobs that would change one count against it). */
export function nodeMode(observation: Observation): StatusReport['mode'] {
  const capable = observation.devices.filter((d) => (d.kind === 'gpu' && d.ccCapable) || d.ppcieCapable);
  if (capable.length === 0) return 'none';
  if (capable.some((d) => d.queryError || !d.modes)) return 'unknown';
  const same = (a: DeviceModes, b: DeviceModes) => a.cc === b.cc && a.ppcie === b.ppcie;
  for (const mode of ['off', 'on', 'devtools', 'ppcie'] as const) {
    if (mode === 'ppcie' && capable.some((d) => !d.ppcieCapable)) continue;
    const all = capable.every((d) => {
      const expect = expectedModes(d, mode);
      const pendingOk =
        !d.pending ||
        ((d.pending.cc === undefined || d.pending.cc === expect.cc) &&
          (d.pending.ppcie === undefined || d.pending.ppcie === expect.ppcie));
      return same(d.modes!, expect) && pendingOk;
    });
    if (all) return mode;
  }
  return 'mixed';
}

export async function status(engine: Context, signal?: AbortSignal): Promise<StatusReport> {
  const observation = await observe(engine.sysfs, engine.backend, engine.capability, signal);
  return {
    tee: observation.tee,
    backend: observation.backend,
    canSwitch: observation.canSwitch,
    capability: {
      ccIdsOverridden: engine.capability.overridden.cc,
      ppcieIdsOverridden: engine.capability.overridden.ppcie,
    },
    mode: nodeMode(observation),
    devices: observation.devices.map((d) => ({
      address: d.address,
      kind: d.kind,
      name: d.name,
      deviceId: hexId(d.deviceId),
      arch: d.arch,
      driver: d.driver ?? null,
      ccCapable: d.ccCapable,
      ppcieCapable: d.ppcieCapable,
      ccMode: d.modes?.cc ?? null,
      ppcieMode: d.modes?.ppcie ?? null,
      pending: d.pending ?? null,
      inUseBy: d.heldBy ?? null,
      error: d.queryError ? d.queryError.toJSON() : null,
    })),
  };
}

export interface SetRequest {
  mode: CcMode;
  /** Only these devices (validated against the host); all when absent. */
  devices?: readonly string[];
  dryRun: boolean;
  /** Where to show each device as it goes, given the number of steps; none when undefined. */
  progress?: (steps: number) => ProgressSink | undefined;
}

export interface SetResult {
  observation: Observation;
  plan: Plan;
  /** Absent on a dry run. */
  report?: ApplyReport;
}

/**
 * `set`: observe → plan → apply. `--device` narrows the plan to those devices (each must be a GPU or
 * NVSwitch of this host); `ppcie` always covers the whole node, so it refuses a selection.
 */
export async function setMode(engine: Context, request: SetRequest): Promise<SetResult> {
  const selected = request.devices?.map((d) => parsePciAddress(d));
  // docs/facts/real-hosts.md#devices-behind-intel-vmd-cannot-be-passed-through
  const behindVmd = selected?.find(isVmdDomainAddress);
  if (behindVmd) throw behindVmdError(behindVmd);
  if (selected && request.mode === 'ppcie') {
    throw new GpuccError('ERR_GPUCC_USAGE', 'ppcie is a mode of the whole node: every GPU and NVSwitch together', {
      hint: 'omit --device for ppcie',
    });
  }
  const observation = await observe(engine.sysfs, engine.backend, engine.capability);
  if (selected) {
    for (const address of selected) {
      if (!observation.devices.some((d) => d.address === address)) {
        throw new GpuccError('ERR_GPUCC_DEVICE_NOT_FOUND', `${address} is not an NVIDIA GPU or NVSwitch of this host`, {
          hint: 'list them with: cc-manager status',
          details: { device: address },
        });
      }
    }
  }
  const scoped = selected
    ? { ...observation, devices: observation.devices.filter((d) => selected.includes(d.address)) }
    : observation;
  if (engine.logger.isLevelEnabled('debug')) {
    for (const d of scoped.devices) {
      engine.logger.debug({ event: 'cc.observe', device: d.address, modes: describeModes(d.modes) }, 'observed');
    }
  }
  const plan = planSwitch(request.mode, scoped);
  if (request.dryRun) return { observation, plan };
  // One progress line per device step (a reset; two when leaving PPCIe) and one per verification.
  const progress = request.progress?.(toSwitch(plan).reduce((n, d) => n + d.steps.length + 1, 0));
  const report = await applyPlan(plan, {
    backend: engine.backend,
    sysfs: engine.sysfs,
    logger: engine.logger,
    maxParallel: engine.maxParallel,
    ...(progress ? { progress } : {}),
  });
  return { observation, plan, report };
}
