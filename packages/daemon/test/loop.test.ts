import { EventEmitter } from 'node:events';
import { GpuccError } from '@gpucc/hal';
import { captureLines, silentLogger } from '@gpucc/testbed/fixtures';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/index.js';
import {
  backoffDelay,
  createMetrics,
  FORCED_EXIT_CODE,
  loopReadiness,
  type ReconcileOutcome,
  runReconcileLoop,
  shutdownOnSignals,
} from '../src/runtime.js';
import { deferred, manualDelay, settle } from './helpers.js';

const RESYNC = 60_000;
const BACKOFF = { initialMs: 100, maxMs: 500, factor: 2 };

/** A loop whose reconcile answers from a script (default: success) and whose waits the test fires. */
function harness(script: Array<() => Promise<ReconcileOutcome>> = []) {
  const out = captureLines();
  const logger = createLogger({ name: 't', format: 'json', level: 'debug', destination: out.sink });
  const clock = manualDelay();
  const controller = new AbortController();
  const signals: AbortSignal[] = [];
  const metrics = createMetrics({ binary: 't', version: '0' });
  const loop = runReconcileLoop({
    reconcile: (signal) => {
      signals.push(signal);
      return script.shift()?.() ?? Promise.resolve({ ok: true });
    },
    resyncMs: RESYNC,
    backoff: BACKOFF,
    signal: controller.signal,
    delay: clock.delay,
    logger,
    metrics,
  });
  /** The `reasons` of each finished reconcile, from its log line. */
  const reasons = () =>
    out.records.filter((r) => r.event === 'reconcile.done' || r.event === 'reconcile.failed').map((r) => r.reasons);
  return { out, clock, controller, loop, signals, reasons, metrics };
}

const fail =
  (reason = 'EBUSY') =>
  () =>
    Promise.resolve({ ok: false, reason });
const boom = () => () => Promise.reject(new GpuccError('ERR_GPUCC_BIND_FAILED', 'bind failed', { hint: 'h' }));

describe('runReconcileLoop', () => {
  it('reconciles on start, then once per resync period', async () => {
    const h = harness();
    await settle();
    expect(h.loop.state.runs).toBe(1);
    expect(h.signals[0]).toBe(h.controller.signal);
    expect(h.clock.waits.map((w) => w.ms)).toEqual([RESYNC]);
    h.clock.last().fire();
    await settle();
    expect(h.loop.state.runs).toBe(2);
    expect(h.reasons()).toEqual([['start'], ['resync']]);
    h.controller.abort();
    await h.loop.done;
  });

  it('runs at once on a trigger while it waits for the resync', async () => {
    const h = harness();
    await settle();
    h.loop.trigger('label-change');
    await settle();
    expect(h.loop.state.runs).toBe(2);
    expect(h.reasons()).toEqual([['start'], ['label-change']]);
    expect(h.clock.waits).toHaveLength(2); // the first resync wait was cut short, a new one started
    h.controller.abort();
    await h.loop.done;
  });

  it('coalesces any number of triggers during a reconcile into exactly one more run', async () => {
    const slow = deferred<ReconcileOutcome>();
    const h = harness([() => slow.promise]);
    await settle();
    for (let i = 0; i < 5; i++) h.loop.trigger(i % 2 ? 'device-added' : 'label-change');
    slow.resolve({ ok: true });
    await settle();
    expect(h.loop.state.runs).toBe(2);
    expect(h.reasons()).toEqual([['start'], ['label-change', 'device-added']]);
    expect(h.clock.waits.map((w) => w.ms)).toEqual([RESYNC]); // converged: back to waiting for the resync
    h.controller.abort();
    await h.loop.done;
  });

  it('retries a failure with growing, capped delays and no trigger, and resets after a success', async () => {
    const h = harness([fail(), boom(), fail(), fail(), fail(), () => Promise.resolve({ ok: true }), fail()]);
    for (let i = 0; i < 9; i++) {
      await settle();
      h.clock.last().fire();
    }
    await settle();
    expect(h.loop.state.runs).toBe(6);
    expect(h.loop.state.consecutiveFailures).toBe(0);
    // 5 failures: 100, 200, 400, then capped at 500 (each the 100 ms floor, then the rest); then the resync.
    expect(h.clock.waits.map((w) => w.ms)).toEqual([100, 100, 100, 100, 300, 100, 400, 100, 400, RESYNC]);
    h.loop.trigger('label-change');
    await settle();
    expect(h.loop.state.consecutiveFailures).toBe(1);
    expect(h.clock.last().ms).toBe(100); // the backoff starts over
    const failed = h.out.records.filter((r) => r.event === 'reconcile.failed');
    expect(failed.map((r) => r.retryInMs)).toEqual([100, 200, 400, 500, 500, 100]);
    expect(failed[1]!.err).toMatchObject({ code: 'ERR_GPUCC_BIND_FAILED' });
    expect(h.reasons()[1]).toEqual(['retry']);
    const text = await h.metrics.registry.metrics();
    expect(text).toContain('gpucc_reconcile_total{result="failure"} 6');
    expect(text).toContain('gpucc_reconcile_total{result="success"} 1');
    h.controller.abort();
    await h.loop.done;
  });

  it('ends a backoff wait on a change event (after the initial delay), and keeps pacing the same failure', async () => {
    const h = harness([fail(), fail(), fail(), fail()]);
    await settle();
    h.clock.last().fire(); // first retry after 100 ms
    await settle();
    expect(h.loop.state.runs).toBe(2);
    // second failure: 200 ms = the 100 ms floor, then 100 ms a change event may cut short
    expect(h.clock.waits.slice(1).map((w) => w.ms)).toEqual([100]);
    h.clock.last().fire();
    await settle();
    expect(h.clock.last().ms).toBe(100);
    h.loop.trigger('label-change');
    await settle();
    expect(h.loop.state.runs).toBe(3); // ran at once, not after the rest of the backoff
    expect(h.reasons()[2]).toEqual(['label-change', 'retry']);
    // third failure: 400 ms; a trigger within the floor waits for it, then runs at once
    expect(h.clock.last().ms).toBe(100);
    h.loop.trigger('label-change');
    await settle();
    expect(h.loop.state.runs).toBe(3);
    h.clock.last().fire();
    await settle();
    expect(h.loop.state.runs).toBe(4);
    h.controller.abort();
    await h.loop.done;
  });

  it('does not let the failed run’s own events cut its backoff short', async () => {
    const slow = deferred<ReconcileOutcome>();
    const h = harness([() => slow.promise, fail()]);
    await settle();
    h.loop.trigger('own-write'); // raised while the failing reconcile runs
    slow.resolve({ ok: false, reason: 'EBUSY' });
    await settle();
    expect(h.loop.state.runs).toBe(1);
    h.clock.last().fire();
    await settle();
    expect(h.loop.state.runs).toBe(2);
    expect(h.reasons()[1]).toEqual(['retry']);
    h.controller.abort();
    await h.loop.done;
  });

  it('on abort lets the reconcile in flight finish, then stops without another run', async () => {
    const slow = deferred<ReconcileOutcome>();
    const h = harness([() => slow.promise]);
    let stopped = false;
    void h.loop.done.then(() => {
      stopped = true;
    });
    await settle();
    h.controller.abort();
    h.loop.trigger('late');
    await settle();
    expect(stopped).toBe(false); // still waiting for the sysfs sequence
    expect(h.signals[0]!.aborted).toBe(true); // which can see that it should wind down
    slow.resolve({ ok: true });
    await h.loop.done;
    expect(h.loop.state.runs).toBe(1);
    expect(h.loop.state.stopped).toBe(true);
    expect(h.clock.waits).toHaveLength(0);
    expect(h.out.events().at(-1)).toBe('loop.stop');
  });

  it('stops during a wait without waiting for the timer', async () => {
    const h = harness();
    await settle();
    h.controller.abort(); // the manual delay ignores its signal: it never fires on its own
    await h.loop.done;
    expect(h.loop.state.runs).toBe(1);
  });

  it('never runs when started already aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    let runs = 0;
    const loop = runReconcileLoop({
      reconcile: async () => {
        runs++;
        return { ok: true };
      },
      resyncMs: RESYNC,
      backoff: BACKOFF,
      signal: controller.signal,
      logger: silentLogger(),
    });
    await loop.done;
    expect(runs).toBe(0);
  });

  it('refuses settings that would spin or never retry', () => {
    const logger = silentLogger();
    const base = { reconcile: async () => ({ ok: true }), signal: new AbortController().signal, logger };
    expect(() => runReconcileLoop({ ...base, resyncMs: 0, backoff: BACKOFF })).toThrow(/resync/);
    expect(() => runReconcileLoop({ ...base, resyncMs: 1, backoff: { ...BACKOFF, factor: 0.5 } })).toThrow(GpuccError);
    expect(() => runReconcileLoop({ ...base, resyncMs: 1, backoff: { ...BACKOFF, maxMs: 10 } })).toThrow(GpuccError);
  });

  it('reports readiness: not before the first success, not after a failure, yes after a success', async () => {
    const first = deferred<ReconcileOutcome>();
    const h = harness([() => first.promise, fail('vfio-pci not loaded')]);
    await settle();
    expect(loopReadiness(h.loop.state)).toEqual({ ready: false, reason: 'no reconcile has finished yet' });
    first.resolve({ ok: true });
    await settle();
    expect(loopReadiness(h.loop.state)).toEqual({ ready: true });
    expect(h.loop.state.lastSuccessAt).toBeInstanceOf(Date);
    h.loop.trigger('x');
    await settle();
    expect(loopReadiness(h.loop.state)).toEqual({
      ready: false,
      reason: 'last 1 reconcile(s) failed: vfio-pci not loaded',
    });
    h.controller.abort();
    await h.loop.done;
    expect(loopReadiness(h.loop.state).ready).toBe(false);
  });
});

describe('backoffDelay', () => {
  it('grows by the factor and stops at the cap', () => {
    expect([1, 2, 3, 4, 10].map((n) => backoffDelay({ initialMs: 1000, maxMs: 30_000, factor: 3 }, n))).toEqual([
      1000, 3000, 9000, 27_000, 30_000,
    ]);
  });
});

describe('shutdownOnSignals', () => {
  function setup() {
    const target = new EventEmitter();
    const exits: number[] = [];
    const out = captureLines();
    const logger = createLogger({ name: 't', format: 'json', level: 'info', destination: out.sink });
    const controller = shutdownOnSignals(logger, { target, exit: (code) => exits.push(code) });
    return { target, exits, out, controller };
  }

  it('aborts on the first SIGTERM and exits 130 on the second signal', () => {
    const s = setup();
    expect(s.controller.signal.aborted).toBe(false);
    s.target.emit('SIGTERM', 'SIGTERM');
    expect(s.controller.signal.aborted).toBe(true);
    expect(s.exits).toEqual([]);
    s.target.emit('SIGINT', 'SIGINT');
    expect(s.exits).toEqual([FORCED_EXIT_CODE]);
    expect(FORCED_EXIT_CODE).toBe(130);
    expect(s.out.events()).toEqual(['daemon.shutdown', 'daemon.exit-forced']);
  });

  it('treats SIGINT (Ctrl-C) like SIGTERM', () => {
    const s = setup();
    s.target.emit('SIGINT', 'SIGINT');
    expect(s.controller.signal.aborted).toBe(true);
    expect(s.out.records[0]).toMatchObject({ event: 'daemon.shutdown', signal: 'SIGINT' });
  });
});
