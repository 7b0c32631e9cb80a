export { createMetrics, type DaemonMetrics, READY_GAUGE } from './registry.js';
