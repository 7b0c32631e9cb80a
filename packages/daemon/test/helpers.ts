import type { Delay } from '../src/loop/delay.js';

// Temp dirs on tmpfs, removed after each test: the simulator's test helper serves every package.
export { tempDir } from '../../sim/test/helpers.js';

/** A pino destination that keeps every line, parsed. */
export function captureLines() {
  const raw: string[] = [];
  return {
    raw,
    sink: { write: (chunk: string) => raw.push(...chunk.split('\n').filter((line) => line !== '')) },
    get records(): Record<string, unknown>[] {
      return raw.map((line) => JSON.parse(line) as Record<string, unknown>);
    },
    events(): unknown[] {
      return this.records.map((record) => record.event);
    },
  };
}

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
