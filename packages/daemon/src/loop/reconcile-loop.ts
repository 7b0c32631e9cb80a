import { performance } from 'node:perf_hooks';
import { GpuccError, messageOf } from '@gpucc/hal';
import type { Logger } from '../log/logger.js';
import type { DaemonMetrics } from '../metrics/daemon-metrics.js';
import { type BackoffSettings, backoffDelay, checkBackoff } from './backoff.js';
import { abortableDelay, type Delay, whenAborted } from './delay.js';

export interface ReconcileOutcome {
  ok: boolean;
  /** One line: why it failed, or what it did. Shown in logs and by /readyz. */
  reason?: string;
  /** Structured facts for the reconcile.done / reconcile.failed line (actions planned, applied...). */
  details?: Record<string, unknown>;
}

export interface ReconcileLoopOptions {
  /** Observe, plan, apply. Gets the stop signal and decides itself where it can stop safely. */
  reconcile: (signal: AbortSignal) => Promise<ReconcileOutcome>;
  /** Periodic resync after a success, so drift is corrected without an event. */
  resyncMs: number;
  backoff: BackoffSettings;
  signal: AbortSignal;
  /** Waits; must settle early when its signal aborts. Tests inject one that does not sleep. */
  delay?: Delay;
  logger: Logger;
  metrics?: DaemonMetrics;
}

export interface ReconcileLoopState {
  /** Reconciles started so far. */
  runs: number;
  running: boolean;
  lastOutcome: ReconcileOutcome | undefined;
  consecutiveFailures: number;
  lastSuccessAt: Date | undefined;
  stopped: boolean;
}

export interface ReconcileLoop {
  /** A change event. Triggers that arrive while a reconcile runs are coalesced into one more run. */
  trigger(reason: string): void;
  /** Resolves once the loop has stopped (after the reconcile in flight, if any, has finished). */
  done: Promise<void>;
  /** A snapshot, for readiness and tests. */
  readonly state: ReconcileLoopState;
}

type WaitEnd = 'timer' | 'trigger' | 'abort';

/**
 * Level-triggered reconcile: on start, on every trigger and every `resyncMs`. A failure (a throw or
 * `ok: false`) is retried after an exponential backoff without waiting for a trigger; success resets
 * it. The backoff paces retries of the same failure only: a change event ends the wait, and the
 * reconcile runs at once, except within the first `initialMs` after a failure (so the failing
 * reconcile's own writes, which raise events too, cannot make it spin).
 */
export function runReconcileLoop(options: ReconcileLoopOptions): ReconcileLoop {
  const { signal, logger, metrics } = options;
  checkBackoff(options.backoff);
  if (!(options.resyncMs > 0)) {
    throw new GpuccError('ERR_GPUCC_INVALID_CONFIG', `invalid resync interval ${options.resyncMs} ms`, {
      hint: 'the resync interval must be a positive number of milliseconds',
      details: { resyncMs: options.resyncMs },
    });
  }
  const delay = options.delay ?? abortableDelay;
  const state: ReconcileLoopState = {
    runs: 0,
    running: false,
    lastOutcome: undefined,
    consecutiveFailures: 0,
    lastSuccessAt: undefined,
    stopped: false,
  };
  let pending = new Set<string>(['start']);
  let wake: AbortController | undefined; // set while a resync wait may be cut short by a trigger

  function trigger(reason: string): void {
    if (state.stopped || signal.aborted) return;
    pending.add(reason);
    logger.debug({ event: 'reconcile.trigger', reason, running: state.running }, 'change event');
    wake?.abort();
  }

  async function wait(ms: number, wakeOnTrigger: boolean): Promise<WaitEnd> {
    const ctl = new AbortController();
    const forward = () => ctl.abort();
    signal.addEventListener('abort', forward, { once: true });
    if (wakeOnTrigger) wake = ctl;
    try {
      if (!signal.aborted) await Promise.race([delay(ms, ctl.signal).catch(() => {}), whenAborted(ctl.signal)]);
    } finally {
      signal.removeEventListener('abort', forward);
      wake = undefined;
    }
    if (signal.aborted) return 'abort';
    return ctl.signal.aborted ? 'trigger' : 'timer';
  }

  async function reconcileOnce(reasons: string[]): Promise<ReconcileOutcome> {
    state.runs++;
    state.running = true;
    logger.debug({ event: 'reconcile.start', reasons, run: state.runs }, 'reconcile');
    const started = performance.now();
    let outcome: ReconcileOutcome;
    let error: unknown;
    try {
      outcome = await options.reconcile(signal);
      if (typeof outcome?.ok !== 'boolean') outcome = { ok: false, reason: 'reconcile returned no outcome' };
    } catch (thrown) {
      error = thrown;
      outcome = { ok: false, reason: messageOf(thrown) };
    } finally {
      state.running = false;
    }
    const seconds = (performance.now() - started) / 1000;
    const durationMs = Math.round(seconds * 1000);
    state.lastOutcome = outcome;
    metrics?.observeReconcile(outcome.ok, seconds);
    if (outcome.ok) {
      state.consecutiveFailures = 0;
      state.lastSuccessAt = new Date();
      const fields = { event: 'reconcile.done', reasons, durationMs, ...outcome.details };
      logger.info(fields, outcome.reason ?? 'reconciled');
    } else {
      state.consecutiveFailures++;
      const retryInMs = signal.aborted ? undefined : backoffDelay(options.backoff, state.consecutiveFailures);
      const fields = {
        event: 'reconcile.failed',
        reasons,
        durationMs,
        failures: state.consecutiveFailures,
        retryInMs,
        ...outcome.details,
        ...(error === undefined ? {} : { err: error }),
      };
      logger.warn(fields, outcome.reason ?? 'reconcile failed');
    }
    return outcome;
  }

  async function loop(): Promise<void> {
    logger.debug({ event: 'loop.start', resyncMs: options.resyncMs }, 'reconcile loop started');
    while (!signal.aborted) {
      const reasons = [...pending];
      pending = new Set();
      const outcome = await reconcileOnce(reasons);
      if (signal.aborted) break;
      if (!outcome.ok) {
        const backoff = backoffDelay(options.backoff, state.consecutiveFailures);
        const floor = Math.min(options.backoff.initialMs, backoff);
        pending = new Set(); // events of the failed run itself (its own writes) do not end the wait
        if ((await wait(floor, false)) === 'abort') break;
        const rest = backoff - floor;
        if (pending.size === 0 && rest > 0 && (await wait(rest, true)) === 'abort') break;
        pending.add('retry');
      } else if (pending.size === 0) {
        const end = await wait(options.resyncMs, true);
        if (end === 'abort') break;
        if (end === 'timer') pending.add('resync');
      }
    }
    state.stopped = true;
    logger.info({ event: 'loop.stop', runs: state.runs }, 'reconcile loop stopped');
  }

  const done = loop().catch((error: unknown) => {
    // Only a logger failure can land here; the loop itself catches every reconcile error.
    state.stopped = true;
    logger.error({ event: 'loop.crash', err: error }, 'reconcile loop crashed');
  });

  return {
    trigger,
    done,
    get state() {
      return { ...state };
    },
  };
}
