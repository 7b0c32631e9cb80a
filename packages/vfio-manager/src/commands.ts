import type { Sysfs } from '@gpucc/hal';
import { type ApplyOptions, type ApplyReport, applyBind, applyRelease } from './apply.js';
import { type Observation, observe } from './observe.js';
import { type Plan, type PlanOptions, planBind, planRelease } from './plan.js';
import type { Selection } from './select.js';
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
export async function bind(sysfs: Sysfs, request: BindRequest, options: ApplyOptions): Promise<RunResult> {
  const observation = observe(sysfs);
  const plan = planBind(observation, request.selection, request);
  if (request.dryRun) return { plan, observation };
  return { plan, observation, report: await applyBind(sysfs, plan, observation, options) };
}

/** observe → plan → apply for `unbind` (and the daemon's reconcile toward `none`). */
export async function release(sysfs: Sysfs, request: ReleaseRequest, options: ApplyOptions): Promise<RunResult> {
  const observation = observe(sysfs);
  const plan = planRelease(observation, request.selection, request);
  if (request.dryRun) return { plan, observation };
  return { plan, observation, report: await applyRelease(sysfs, plan, observation, options) };
}

/** The status of every NVIDIA function against a desired state; reads only. */
export function status(
  sysfs: Sysfs,
  desired: 'vfio' | 'none',
  request: PlanOptions & { selection: Selection },
): StatusReport {
  const observation = observe(sysfs);
  const plan =
    desired === 'vfio'
      ? planBind(observation, request.selection, request)
      : planRelease(observation, request.selection, { nvswitches: request.nvswitches, restore: false });
  return statusReport(sysfs, observation, plan);
}

/** Exit code of a one-shot command: 0 converged, 1 something could not be done (never 0 then). */
export function exitCodeOf(result: RunResult): 0 | 1 {
  if (!result.report) return result.plan.groups.some((g) => g.refused) ? 1 : 0;
  return result.report.ok ? 0 : 1;
}
