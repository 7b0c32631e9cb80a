// What the testbed (suite, benchmarks) and cross-package tests use by package name.
export { DEFAULT_GPU_ADMIN_TOOLS } from './backend/select.js';
export { main } from './cli.js';
export { CC_MODE_LABEL, CC_MODE_STATE_LABEL, CC_READY_STATE_LABEL } from './labels.js';
export { PAUSED } from './operands.js';
