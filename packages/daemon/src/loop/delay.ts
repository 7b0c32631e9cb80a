/** Waits `ms`, or less when the signal aborts; never rejects. Tests inject their own. */
export type Delay = (ms: number, signal: AbortSignal) => Promise<void>;

export const abortableDelay: Delay = (ms, signal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });

/** Settles when the signal aborts: guards against an injected delay that ignores its signal. */
export function whenAborted(signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
