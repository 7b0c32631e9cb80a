export { type BackoffSettings, backoffDelay } from './backoff.js';
export { abortableDelay, type Delay } from './delay.js';
export { loopReadiness, type Readiness } from './readiness.js';
export {
  type ReconcileLoop,
  type ReconcileLoopOptions,
  type ReconcileLoopState,
  type ReconcileOutcome,
  runReconcileLoop,
} from './reconcile-loop.js';
export { type LoopWatches, serveWatchedLoop, type WatchedLoopOptions } from './serve.js';
export { FORCED_EXIT_CODE, type SignalTarget, shutdownOnSignals } from './signals.js';
