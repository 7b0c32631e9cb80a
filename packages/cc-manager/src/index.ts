// What the testbed (suite, benchmarks) and cross-package tests use by package name.
export { DEFAULT_GPU_ADMIN_TOOLS } from './backend/select.js';
export { main } from './cli.js';
export { DOCTOR_PASSED_LABEL } from './doctor/nfd.js';
export { CC_MODE_LABEL, CC_MODE_STATE_LABEL, CC_READY_STATE_LABEL } from './labels.js';
export { ABSENT_MEANINGS, type AbsentMeaning, OPERAND_LABELS, PAUSED, pausePatch, restorePatch } from './operands.js';
