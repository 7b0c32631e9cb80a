export { main as simMain } from './cli.js';
export { formatInspect, type InspectReport, inspectHost } from './inspect.js';
export {
  KernelErrno,
  KernelSimulator,
  kernelPid,
  openSimulatedSysfs,
  type SimulatedSysfsOptions,
  startKernel,
  stopKernel,
} from './kernel/index.js';
export { treeInconsistencies } from './node/consistency.js';
export { type CreateNodeResult, createNode } from './node/create.js';
export { breakAttribute, clearFaults, injectFault } from './node/faults.js';
export { layoutNode } from './node/layout.js';
export type { CcState, DeviceSpec, DriverSpec, HostTee, NodeSpec } from './node/spec.js';
export {
  DEFAULT_TOOL_SETTINGS,
  FAULT_KINDS,
  type Fault,
  type FaultKind,
  isSimulatedNode,
  readCcState,
  readFaults,
  readNodeSpec,
  readToolSettings,
  type ToolSettings,
  writeCcState,
  writeToolSettings,
} from './node/state.js';
export { type LoggedWrite, readWriteLog } from './node/write-log.js';
export { findProfile, PROFILES, type Profile, type ProfileOptions, parseTee } from './profiles/profiles.js';
export { installFakeTools } from './tools/index.js';
