// What tests, benchmarks and the testbed's suite drive the simulated node with.
export { KUBECONFIG_FILE, SERVER_FILE } from './apiserver/paths.js';
export { type ApiServer, startApiServer } from './apiserver/server.js';
export { listEvents, nodeLabels, setLabels } from './apiserver/store.js';
export { attachSimulatorHere, simulatorAttachment } from './attachment.js';
export { main as simMain } from './cli.js';
export { formatInspect, type InspectReport, inspectHost } from './inspect.js';
export {
  KernelErrno,
  KernelSimulator,
  kernelPid,
  openSimulatedHost,
  type SimulatedHostOptions,
  startKernel,
  stopKernel,
} from './kernel/index.js';
export { controlRequest } from './kubelet/control.js';
export {
  FakeKubelet,
  type FakeKubeletOptions,
  type KubeletAllocation,
  type KubeletState,
} from './kubelet/fake-kubelet.js';
export { DevicePluginClient } from './kubelet/grpc-js.js';
export { treeInconsistencies } from './node/consistency.js';
export { type CreateNodeResult, createNode } from './node/create.js';
export { devPath, loadDriver } from './node/effects.js';
export { breakAttribute, clearFaults, injectFault } from './node/faults.js';
export { Tree } from './node/files.js';
export { type HoldOptions, holdGpu, releaseHolder, vmHold } from './node/holders.js';
export { layoutNode } from './node/layout.js';
export { SIM_DIR } from './node/paths.js';
export type { CcState, DeviceSpec, DriverSpec, HostTee, NodeSpec, NvidiaDriverKind } from './node/spec.js';
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
  writeNodeSpec,
  writeToolSettings,
} from './node/state.js';
export { type LoggedWrite, readHeldAccesses, readWriteLog } from './node/write-log.js';
export { findProfile, PROFILES, type Profile, type ProfileOptions, parseTee } from './profiles/profiles.js';
export { GPU_TOOLS_PATH, installFakeTools } from './tools/index.js';
