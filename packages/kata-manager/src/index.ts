// What the testbed (suite, benchmarks) and cross-package tests use by package name.
export { main } from './cli.js';
export { DEFAULT_CDI_DIR, generate } from './commands.js';
