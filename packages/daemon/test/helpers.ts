import type { Delay } from '../src/loop/delay.js';

export interface PendingWait {
  ms: number;
  signal: AbortSignal;
  fire(): void;
}

/**
 * A delay that never sleeps: each wait is recorded and ends only when the test fires it. It ignores
 * its abort signal on purpose, so the tests also show that the loop does not depend on the delay for that.
 */
export function manualDelay() {
  const waits: PendingWait[] = [];
  const delay: Delay = (ms, signal) => new Promise<void>((resolve) => waits.push({ ms, signal, fire: resolve }));
  return { delay, waits, last: () => waits.at(-1)! };
}

export function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every pending promise callback and I/O callback run. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}
