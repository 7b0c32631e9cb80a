import type { ListenAddress } from '../config/listen-address.js';
import { startHealthServer } from '../http/health-server.js';
import type { Logger } from '../log/logger.js';
import type { DaemonMetrics } from '../metrics/daemon-metrics.js';
import { loopReadiness } from './readiness.js';
import { type ReconcileOutcome, runReconcileLoop } from './reconcile-loop.js';

/** The change watches of a run mode: re-armed after every reconcile, closed at the end. */
export interface LoopWatches {
  refresh(): unknown;
  close(): void;
}

export interface WatchedLoopOptions {
  /** Opens the watches, before the first reconcile reads the host, so no change falls between the two. */
  watch: (trigger: (reason: string) => void) => LoopWatches;
  reconcile: (signal: AbortSignal) => Promise<ReconcileOutcome>;
  resyncMs: number;
  metricsAddress: ListenAddress;
  metrics: DaemonMetrics;
  logger: Logger;
  /** From shutdownOnSignals: ends the loop (the reconcile in flight finishes) and the health server. */
  stop: AbortController;
}

/**
 * The run mode of a level-triggered operand: change watches that trigger a reconcile and are
 * re-armed after each one (a reconcile can create the directories they watch), the reconcile loop
 * with its resync and backoff, and /healthz /readyz /metrics until the stop signal. Resolves once
 * the loop has stopped and the server is closed.
 */
export async function serveWatchedLoop(options: WatchedLoopOptions): Promise<void> {
  const { logger, metrics, stop } = options;
  let trigger: (reason: string) => void = () => {};
  const watches = options.watch((reason) => trigger(reason));
  const loop = runReconcileLoop({
    reconcile: async (signal) => {
      try {
        return await options.reconcile(signal);
      } finally {
        watches.refresh();
      }
    },
    resyncMs: options.resyncMs,
    backoff: { initialMs: 1_000, maxMs: 60_000, factor: 2 },
    signal: stop.signal,
    logger,
    metrics,
  });
  trigger = (reason) => loop.trigger(reason);
  const server = await startHealthServer({
    address: options.metricsAddress,
    readiness: () => loopReadiness(loop.state),
    registry: metrics.registry,
    logger,
  });
  stop.signal.addEventListener('abort', () => server.markShuttingDown());
  await loop.done;
  watches.close();
  await server.close();
}
