import { acquireHostLock, type HostRoot } from '@gpucc/hal';
import { type ApplyOptions, type ApplyReport, applyBind, applyRelease } from './apply.js';
import { type Observation, observe } from './observe.js';
import { type Plan, type PlanOptions, planBind, planRelease } from './plan.js';
import type { Selection } from './select.js';
import { LOCK_FILE, STATE_FILE } from './state.js';
import { type StatusReport, statusReport } from './status.js';

export interface BindRequest extends PlanOptions {
  selection: Selection;
  dryRun: boolean;
}

export interface ReleaseRequest {
  selection: Selection;
  nvswitches: boolean;
  restore: boolean;
  dryRun: boolean;
}

export interface RunResult {
  plan: Plan;
  observation: Observation;
  /** Absent on a dry run. */
  report?: ApplyReport;
}

/** observe → plan → apply for `bind` (and the daemon's reconcile toward `vfio`). */
export async function bind(sysfs: HostRoot, request: BindRequest, options: ApplyOptions): Promise<RunResult> {
  if (request.dryRun) {
    const observation = observe(sysfs);
    return { plan: planBind(observation, request.selection, request), observation };
  }
  return underHostLock(sysfs, options, 'bind', async () => {
    const observation = observe(sysfs);
    const plan = planBind(observation, request.selection, request);
    return { plan, observation, report: await applyBind(sysfs, plan, observation, options) };
  });
}

/** observe → plan → apply for `unbind` (and the daemon's reconcile toward `none`). */
export async function release(sysfs: HostRoot, request: ReleaseRequest, options: ApplyOptions): Promise<RunResult> {
  if (request.dryRun) {
    const observation = observe(sysfs);
    return { plan: planRelease(observation, request.selection, request), observation };
  }
  return underHostLock(sysfs, options, 'unbind', async () => {
    const observation = observe(sysfs);
    const plan = planRelease(observation, request.selection, request);
    return { plan, observation, report: await applyRelease(sysfs, plan, observation, options) };
  });
}

const DEFAULT_LOCK_TIMEOUT_MS = 30_000;

/**
 * One writer at a time, host-wide: the state is read (observe), planned and written while the lock
 * is held, so two vfio-manager processes (the run daemon and an operator's unbind) never act on each
 * other's stale view. Temp files a killed writer left beside the state file go first.
 */
async function underHostLock<T>(
  sysfs: HostRoot,
  options: ApplyOptions,
  command: string,
  fn: () => Promise<T>,
): Promise<T> {
  const lock = await acquireHostLock(sysfs, LOCK_FILE, {
    timeoutMs: options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS,
    owner: `vfio-manager ${command}`,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  try {
    const removed = await sysfs.removeStaleTempFiles(STATE_FILE);
    if (removed > 0)
      options.logger.info(
        { event: 'state.temp_removed', count: removed },
        `removed ${removed} stale state temp file(s)`,
      );
    return await fn();
  } finally {
    await lock.release();
  }
}

/** The status of every NVIDIA function against a desired state; reads only. */
export function status(
  sysfs: HostRoot,
  desired: 'vfio' | 'none',
  request: PlanOptions & { selection: Selection },
): StatusReport {
  const observation = observe(sysfs);
  const plan =
    desired === 'vfio'
      ? planBind(observation, request.selection, request)
      : planRelease(observation, request.selection, { nvswitches: request.nvswitches, restore: true });
  return statusReport(sysfs, observation, plan);
}

/** Exit code of a one-shot command: 0 converged, 1 something could not be done (never 0 then). */
export function exitCodeOf(result: RunResult): 0 | 1 {
  if (!result.report) return result.plan.groups.some((g) => g.refused) ? 1 : 0;
  return result.report.ok ? 0 : 1;
}
