export { defaultName, gpuArch, isCcCapable, isPpcieCapable, NVSWITCH_GEN3, nvidiaKind } from './chips.js';
export { type FakeToolName, main as runInstalledFakeTool, nodeRootOf, runFakeTool } from './entry.js';
export { runGpuTools } from './gpu-tools.js';
export { type GpuToolsArgs, type GpuToolsOptions, parseAutoInt, parseGpuToolsArgs } from './gpu-tools-args.js';
export { deviceString, GPU_TOOLS_VERSION, listingLines, topoLines } from './gpu-tools-format.js';
export { devicesFromSpec, type Selection, selectDevices } from './gpu-tools-select.js';
export {
  defaultEntryModule,
  fakeToolScript,
  GPU_TOOLS_PATH,
  installFakeTools,
  MODPROBE_PATH,
  NVIDIA_SMI_PATH,
} from './install.js';
export { normalizeModule, parseModprobeArgs, runModprobe } from './modprobe.js';
export { discoverNvidiaDevices, parseBar0 } from './node-devices.js';
export {
  busId,
  confComputeFacts,
  DRIVER_NOT_LOADED,
  readSmiView,
  renderConfCompute,
  renderQueryGpu,
  runNvidiaSmi,
  type SmiGpu,
  type SmiView,
} from './nvidia-smi.js';
export { type ConfComputeCommand, ONE_COMMAND_ONLY, parseNvidiaSmiArgs, type SmiArgs } from './nvidia-smi-args.js';
export { logLine, logTimestamp, pythonListRepr, pythonStrRepr, pythonTraceback } from './python-format.js';
export type { BridgeInfo, ToolDevice } from './tool-device.js';
export { type FirmwareSupport, faultApplies, firmwareOf, takeToolFault } from './tool-faults.js';
export { bufferIo, defaultToolDeps, type ToolDeps, type ToolIo, type ToolOutcome } from './tool-io.js';
