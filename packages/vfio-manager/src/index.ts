export {
  type ApplyOptions,
  type ApplyReport,
  applyBind,
  applyRelease,
  type DeviceResult,
  type Outcome,
} from './apply.js';
export {
  type BindRequest,
  bind,
  exitCodeOf,
  type ReleaseRequest,
  type RunResult,
  release,
  status,
} from './commands.js';
export { type Observation, observe } from './observe.js';
export { type DeviceStep, type GroupPlan, type Plan, planBind, planRelease, planWrites } from './plan.js';
export { type Selection, selectTargets } from './select.js';
export { readState, STATE_FILE, type VfioState } from './state.js';
export { type StatusReport, statusReport } from './status.js';
