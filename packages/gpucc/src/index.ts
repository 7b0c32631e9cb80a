// What tests and the testbed use by package name.
export { exitCodeOf, main, type StatusDocument, type Terminal } from './cli.js';
export { formatStatus, renderOptionsFor } from './format.js';
export { type DeviceRow, type NodeView, observeNode } from './observe.js';
export { findProblems, type Problem } from './problems.js';
export { appended, watchStatus } from './watch.js';
