// What every command of a binary needs at start-up, and what costs nothing to load (the directory
// watch set of `run`, a few lines over the hal). The long-running parts (loop, health server,
// metrics) are in './runtime.js' (`@gpucc/daemon/runtime`), loaded lazily by `run` commands only.
export * from './cli/index.js';
export * from './config/index.js';
export * from './host/index.js';
export * from './log/index.js';
