import type { Logger } from '@gpucc/daemon';
import type { NodeClient } from '@gpucc/daemon/kube';
import {
  type BackoffSettings,
  type DaemonMetrics,
  type Delay,
  type ReconcileLoop,
  type ReconcileOutcome,
  runReconcileLoop,
} from '@gpucc/daemon/runtime';
import { CC_MODE_LABEL } from './labels.js';

export interface ControllerOptions {
  client: NodeClient;
  reconcile: (signal: AbortSignal) => Promise<ReconcileOutcome>;
  resyncMs: number;
  signal: AbortSignal;
  logger: Logger;
  metrics?: DaemonMetrics;
  /** Waits of the retry backoff and the watch backoff; tests inject one that does not sleep. */
  delay?: Delay;
  backoff?: BackoffSettings;
  watchTimeoutSeconds: number;
}

export interface Controller {
  loop: ReconcileLoop;
  /** Settles once the loop (after the reconcile in flight) and the watch have stopped. */
  done: Promise<void>;
}

// A failed switch is retried without a label change; slower and slower, since each try resets GPUs.
export const RETRY_BACKOFF: BackoffSettings = { initialMs: 1_000, maxMs: 300_000, factor: 2 };

/**
 * The reconcile loop (start, resync, retries with backoff) fed by a watch of this node: only a change
 * of `nvidia.com/cc.mode` triggers a reconcile (status heartbeats and our own patches do not); a
 * relist after 410 Gone that finds another value triggers one too.
 */
export function startController(options: ControllerOptions): Controller {
  const { client, logger, signal } = options;
  const loop = runReconcileLoop({
    reconcile: options.reconcile,
    resyncMs: options.resyncMs,
    backoff: options.backoff ?? RETRY_BACKOFF,
    signal,
    logger,
    ...(options.metrics ? { metrics: options.metrics } : {}),
    ...(options.delay ? { delay: options.delay } : {}),
  });
  let seen: string | undefined | null = null; // null: the first read is the start reconcile's business
  const watching = client.watch({
    signal,
    timeoutSeconds: options.watchTimeoutSeconds,
    ...(options.delay ? { delay: options.delay } : {}),
    onNode: (node, update) => {
      const value = node.labels[CC_MODE_LABEL];
      if (seen !== null && value !== seen) {
        logger.info(
          { event: 'cc.label.changed', from: seen ?? null, to: value ?? null, update },
          `${CC_MODE_LABEL} changed`,
        );
        loop.trigger(`${CC_MODE_LABEL}=${value ?? ''}`);
      }
      seen = value;
    },
  });
  return {
    loop,
    done: (async () => {
      await loop.done;
      await watching;
    })(),
  };
}
