export { type ApplyOptions, type ApplyReport, applyPlan, type DeviceResult, type Outcome } from './apply.js';
export type { BackendName, CcBackend, DeviceModes, QueryAnswer, SwitchStep } from './backend/backend.js';
export { gpuAdminToolsBackend } from './backend/gpu-admin-tools.js';
export { type GpuToolsOutput, parseGpuToolsOutput } from './backend/gpu-tools-output.js';
export { nvidiaSmiBackend } from './backend/nvidia-smi.js';
export { type ConfComputeOutput, parseConfCompute } from './backend/nvidia-smi-output.js';
export { selectBackend } from './backend/select.js';
export { type CapabilityTable, capabilityTable, DEFAULT_CAPABILITY, parseIdRanges } from './capability.js';
export { type Desired, resolveDesired } from './desired.js';
export { type CcDevice, findCcDevices } from './devices.js';
export { DOCTOR_PASSED_LABEL, GPUCC_LABEL_PREFIX } from './doctor/nfd.js';
export {
  type Engine,
  nodeMode,
  type SetRequest,
  type SetResult,
  type StatusReport,
  setMode,
  status,
} from './engine.js';
export { CC_MODE_LABEL, CC_MODE_STATE_LABEL, CC_READY_STATE_LABEL, readyStateFor, stateLabels } from './labels.js';
export { observe } from './observe.js';
export {
  ABSENT_MEANINGS,
  type AbsentMeaning,
  OPERAND_LABELS,
  OPERATOR_OPERAND_LABELS,
  type OperandLabels,
  PAUSED,
  pausedValue,
  pausePatch,
  restoredValue,
  restorePatch,
} from './operands.js';
export { type DevicePlan, isConverged, type Observation, type Plan, planSwitch, ppcieRefusal } from './plan.js';
export { READY_MARKER } from './reconcile.js';
export { readCcState, STATE_FILE } from './state.js';
