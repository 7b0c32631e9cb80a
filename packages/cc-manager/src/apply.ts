import { performance } from 'node:perf_hooks';
import type { Logger, ProgressSink } from '@gpucc/daemon';
import { GpuccError, type HostRoot, isGpuccError, type PciAddress } from '@gpucc/hal';
import type { CcBackend, DeviceModes, SwitchStep } from './backend/backend.js';
import { recordModes } from './modes-record.js';
import { type DevicePlan, describeModes, type Plan, toSwitch } from './plan.js';
import { mapBounded } from './pool.js';
import { readIntentRecord, writeIntentRecord } from './state.js';

export type Outcome = 'unchanged' | 'switched' | 'failed' | 'skipped' | 'refused' | 'unreadable';

export interface DeviceResult {
  address: PciAddress;
  kind: 'gpu' | 'nvswitch';
  name: string;
  outcome: Outcome;
  before?: DeviceModes;
  after?: DeviceModes;
  /** The reason for this outcome, one line. */
  detail: string;
  error?: GpuccError;
}

export interface PhaseTiming {
  phase: 'query' | 'ppcie-off' | 'switch' | 'verify';
  devices: number;
  ms: number;
}

export interface ApplyReport {
  mode: Plan['mode'];
  /** Every device converged (skipped ones included): the node is in the mode. */
  ok: boolean;
  refusal?: GpuccError;
  results: DeviceResult[];
  /** Wall time of the tool phases (the tools' own time, as the caller sees it). */
  phases: PhaseTiming[];
}

export interface ApplyOptions {
  backend: CcBackend;
  sysfs: HostRoot;
  logger: Logger;
  /** Tool calls (hence device resets) in flight at once. */
  maxParallel: number;
  /** Told of each device as its reset ends and as it is verified (`set` on a terminal). */
  progress?: ProgressSink;
}

function knobsOf(d: DevicePlan): SwitchStep {
  const knobs: SwitchStep = {};
  for (const { step } of d.steps) Object.assign(knobs, step);
  return knobs;
}

/**
 * Forgets pending records of devices that read their target now (a switch finished after its record
 * was written, e.g. by a tool that outlived a killed cc-manager): nothing is pending on them any more.
 */
export async function forgetApplied(sysfs: HostRoot, plan: Plan): Promise<void> {
  const applied = plan.devices.filter((d) => d.decision === 'converged' && d.pending);
  if (applied.length === 0) return;
  const state = readIntentRecord(sysfs);
  for (const d of applied) delete state.pending[d.address];
  await writeIntentRecord(sysfs, state);
}

/**
 * Carries out a plan as batches (docs/facts/cc-mode.md#batching, done in parallel): intent recorded; then
 * PPCIe off on every device leaving PPCIe; then every device's knobs and reset (one tool call per
 * device, `maxParallel` at once, so the resets run together); then one query verifies them all.
 * A device that fails is reported with the tool's words and skipped by the later phases; the others
 * go on. A switch to or from `ppcie` runs in stages instead (`runStage`): all or nothing. Not abortable: a switch that started finishes (each call is bounded by the tool timeout).
 */
export async function applyPlan(plan: Plan, options: ApplyOptions): Promise<ApplyReport> {
  const { backend, sysfs, logger } = options;
  const failed = new Map<PciAddress, GpuccError>();
  const phases: PhaseTiming[] = [];
  const results = (after: Map<PciAddress, DeviceModes>) => resultsOf(plan, failed, after);
  if (plan.refusal) return { mode: plan.mode, ok: false, refusal: plan.refusal, results: results(new Map()), phases };
  await forgetApplied(sysfs, plan);

  const moving = toSwitch(plan);
  if (moving.length === 0) {
    const res = results(new Map());
    return {
      mode: plan.mode,
      ok: res.every((r) => r.outcome === 'unchanged' || r.outcome === 'skipped'),
      results: res,
      phases,
    };
  }

  // Intent before the first knob write: a pending mode applies at the next reset, whoever does it.
  const state = readIntentRecord(sysfs);
  const since = new Date().toISOString();
  for (const d of moving) state.pending[d.address] = { ...knobsOf(d), since };
  await writeIntentRecord(sysfs, state);

  const staged = plan.mode === 'ppcie' || moving.some((d) => d.steps.some((s) => s.phase === 1));
  for (const phase of [1, 2] as const) {
    const batch = moving.flatMap((d) =>
      failed.has(d.address) ? [] : d.steps.filter((s) => s.phase === phase).map((s) => ({ d, step: s.step })),
    );
    if (batch.length === 0) continue;
    const name = phase === 1 ? 'ppcie-off' : 'switch';
    const started = performance.now();
    if (staged) {
      const ok = await runStage(batch, moving, options, failed);
      phases.push({ phase: name, devices: batch.length, ms: performance.now() - started });
      if (!ok) break;
      continue;
    }
    await mapBounded(batch, options.maxParallel, async ({ d, step }) => {
      const log = logger.child({ device: d.address });
      log.info(
        { event: 'cc.device.switch', phase: name, step, from: describeModes(d.current) },
        `${d.address}: setting ${describeModes(step)} and resetting`,
      );
      const stepStarted = performance.now();
      try {
        await backend.apply(d.device, step);
        options.progress?.({
          device: d.address,
          what: `${describeModes(step)} set, reset`,
          ms: performance.now() - stepStarted,
          ok: true,
        });
      } catch (error) {
        noteFailure(d, asError(error), options, failed);
      }
    });
    phases.push({ phase: name, devices: batch.length, ms: performance.now() - started });
  }

  const toVerify = moving.filter((d) => !failed.has(d.address));
  const after = new Map<PciAddress, DeviceModes>();
  if (toVerify.length > 0) {
    const started = performance.now();
    const answers = await backend.query(toVerify.map((d) => d.device));
    phases.push({ phase: 'verify', devices: toVerify.length, ms: performance.now() - started });
    for (const d of toVerify) {
      const answer = answers.get(d.address);
      if (!answer || 'error' in answer) {
        const err = answer?.error ?? verifyError(d, undefined);
        failed.set(d.address, err);
        options.progress?.({ device: d.address, what: `not verified: ${err.message}`, ok: false });
        continue;
      }
      after.set(d.address, answer.modes);
      const ok =
        (d.expect.cc === undefined || answer.modes.cc === d.expect.cc) &&
        (d.expect.ppcie === undefined || answer.modes.ppcie === d.expect.ppcie);
      options.progress?.({ device: d.address, what: `verified: ${describeModes(answer.modes)}`, ok });
      if (!ok) failed.set(d.address, verifyError(d, answer.modes));
      else
        logger
          .child({ device: d.address })
          .info({ event: 'cc.device.switched', now: answer.modes }, `${d.address}: ${describeModes(answer.modes)}`);
    }
  }

  await recordModes(sysfs, logger, after, plan.mode);
  // Verified devices have nothing pending any more; failed ones keep their record (status shows it).
  const latest = readIntentRecord(sysfs);
  for (const d of moving) if (!failed.has(d.address)) delete latest.pending[d.address];
  await writeIntentRecord(sysfs, latest);

  const res = results(after);
  return {
    mode: plan.mode,
    ok: res.every((r) => r.outcome === 'unchanged' || r.outcome === 'switched' || r.outcome === 'skipped'),
    results: res,
    phases,
  };
}

function noteFailure(d: DevicePlan, err: GpuccError, options: ApplyOptions, failed: Map<PciAddress, GpuccError>) {
  failed.set(d.address, err);
  options.logger.child({ device: d.address }).warn({ event: 'cc.device.failed', err }, `${d.address}: ${err.message}`);
  options.progress?.({ device: d.address, what: `failed: ${err.message}`, ok: false });
}

/**
 * One stage of a PPCIe switch (docs/facts/cc-mode.md#ppcie-in-stages): every device's knobs set, and
 * only when every set succeeded, every device reset. PPCIe is all or nothing, so a failed set resets
 * none: the knobs already set are put back to what the devices read (where the tool allows; a device
 * whose knobs could not be put back keeps its pending record, so the next reconcile converges), and
 * every device of the stage is reported failed, the one that failed with the tool's words. Returns
 * whether every device was set and reset.
 */
async function runStage(
  batch: readonly { d: DevicePlan; step: SwitchStep }[],
  all: readonly DevicePlan[],
  options: ApplyOptions,
  failed: Map<PciAddress, GpuccError>,
): Promise<boolean> {
  const { backend, logger, maxParallel } = options;
  const setFailed = new Map<PciAddress, GpuccError>();
  await mapBounded(batch, maxParallel, async ({ d, step }) => {
    logger
      .child({ device: d.address })
      .info(
        { event: 'cc.device.set', step, from: describeModes(d.current) },
        `${d.address}: setting ${describeModes(step)} (reset after every device is set)`,
      );
    try {
      await backend.set(d.device, step);
    } catch (error) {
      setFailed.set(d.address, asError(error));
    }
  });
  if (setFailed.size === 0) {
    await mapBounded(batch, maxParallel, async ({ d, step }) => {
      const started = performance.now();
      try {
        await backend.reset(d.device);
        options.progress?.({
          device: d.address,
          what: `${describeModes(step)} set, reset`,
          ms: performance.now() - started,
          ok: true,
        });
      } catch (error) {
        noteFailure(d, asError(error), options, failed);
      }
    });
    return true;
  }

  const culprits = [...setFailed.keys()].join(', ');
  const reverted: PciAddress[] = [];
  await mapBounded(batch, maxParallel, async ({ d, step }) => {
    const back = knobsBack(step, d.current);
    try {
      if (back) {
        await backend.set(d.device, back);
        reverted.push(d.address);
      }
    } catch (error) {
      logger
        .child({ device: d.address })
        .warn({ event: 'cc.device.revert-failed', err: asError(error) }, `${d.address}: knobs left pending`);
    }
  });
  const state = readIntentRecord(options.sysfs);
  for (const address of reverted) delete state.pending[address];
  // Devices this stage did not touch keep what was pending on them before.
  for (const d of all) {
    if (batch.some((b) => b.d === d)) continue;
    if (d.pending) state.pending[d.address] = d.pending;
    else delete state.pending[d.address];
    reverted.push(d.address);
  }
  await writeIntentRecord(options.sysfs, state);
  for (const d of all) {
    if (failed.has(d.address)) continue;
    const own = setFailed.get(d.address);
    const kept = reverted.includes(d.address) ? 'its knobs were put back' : 'its knobs stay pending (recorded)';
    noteFailure(
      d,
      new GpuccError(
        'ERR_GPUCC_PPCIE_NOT_RESET',
        own
          ? `${d.address}: ${own.message}; no device was reset (PPCIe switches every device or none), ${kept}`
          : `${d.address} was not reset: the set failed on ${culprits}, so no device was reset (PPCIe switches every device or none); ${kept}`,
        {
          hint: 'see the failed device’s error; fix it and retry (run mode retries on its own); the node is unchanged',
          details: { device: d.address, failed: [...setFailed.keys()], reverted: reverted.includes(d.address) },
          ...(own ? { cause: own } : {}),
        },
      ),
      options,
      failed,
    );
  }
  return false;
}

/** The knobs that undo `step` on a device that reads `current` (undefined when they cannot be told). */
function knobsBack(step: SwitchStep, current: DeviceModes | undefined): SwitchStep | undefined {
  const back: SwitchStep = {};
  if (step.cc) {
    if (current?.cc !== 'on' && current?.cc !== 'off' && current?.cc !== 'devtools') return undefined;
    back.cc = current.cc;
  }
  if (step.ppcie) {
    if (!current?.ppcie) return undefined;
    back.ppcie = current.ppcie;
  }
  return back;
}

function resultsOf(
  plan: Plan,
  failed: Map<PciAddress, GpuccError>,
  after: Map<PciAddress, DeviceModes>,
): DeviceResult[] {
  return plan.devices.map((d): DeviceResult => {
    const base = { address: d.address, kind: d.kind, name: d.name, ...(d.current ? { before: d.current } : {}) };
    switch (d.decision) {
      case 'converged':
        return { ...base, outcome: 'unchanged', detail: d.reason, ...(d.current ? { after: d.current } : {}) };
      case 'skipped':
        return { ...base, outcome: 'skipped', detail: d.reason, ...(d.error ? { error: d.error } : {}) };
      case 'unreadable':
        return {
          ...base,
          outcome: 'unreadable',
          detail: d.error?.message ?? d.reason,
          ...(d.error ? { error: d.error } : {}),
        };
      case 'refused':
        return {
          ...base,
          outcome: 'refused',
          detail: d.error?.message ?? d.reason,
          ...(d.error ? { error: d.error } : {}),
        };
      default: {
        // 'switch'
        if (plan.refusal) return { ...base, outcome: 'refused', detail: plan.refusal.message, error: plan.refusal };
        const error = failed.get(d.address);
        const now = after.get(d.address);
        if (error) return { ...base, outcome: 'failed', detail: error.message, error, ...(now ? { after: now } : {}) };
        return { ...base, outcome: 'switched', detail: `now ${describeModes(now)}`, ...(now ? { after: now } : {}) };
      }
    }
  });
}

function verifyError(d: DevicePlan, now: DeviceModes | undefined): GpuccError {
  return new GpuccError(
    'ERR_GPUCC_CC_VERIFY_FAILED',
    `${d.address} reads ${describeModes(now)} after its reset, expected ${describeModes(d.expect)}`,
    {
      hint: 'the mode stays pending on the device; cc-manager retries; check dmesg, and the VBIOS for CC support',
      details: { device: d.address, expected: d.expect, actual: now },
    },
  );
}

function asError(error: unknown): GpuccError {
  if (isGpuccError(error)) return error;
  return new GpuccError('ERR_GPUCC_TOOL_FAILED', String((error as Error)?.message ?? error), {
    hint: 'see the cause; run the tool by hand',
    cause: error,
  });
}
