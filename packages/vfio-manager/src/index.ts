// What the testbed (suite, benchmarks) and cross-package tests use by package name.
export type { ApplyOptions } from './apply.js';
export { main } from './cli.js';
export { bind, exitCodeOf } from './commands.js';
export { STATE_FILE } from './state.js';
