// What every command of a binary needs at start-up. The long-running parts (loop, health server,
// metrics) are in './runtime.js' (`@gpucc/daemon/runtime`), loaded lazily by `run` commands only.
export * from './cli/index.js';
export * from './config/index.js';
export * from './host/index.js';
export * from './log/index.js';
