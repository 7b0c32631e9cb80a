export {
  ensureModuleLoaded,
  isModuleLoaded,
  type ModprobeOptions,
  type ModprobePolicy,
  modprobe,
  parseModuleName,
} from './modules.js';
export { formatCommandLine, type RunToolOptions, runTool, type ToolResult, tailOf } from './runner.js';
export { type Service, type ServiceExit, type ServiceOptions, spawnDetached, startService } from './service.js';
export { endQuietlyWhenStdoutCloses } from './stdout.js';
