// What the testbed (suite, benchmarks) and cross-package tests use by package name.
export { allocate } from './allocate.js';
export { main } from './cli.js';
export { scanInventory } from './inventory.js';
