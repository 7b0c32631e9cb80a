/** Waits until `test` holds (polling: for conditions no event announces); names what it waited for. */
export async function until<T>(
  what: string,
  test: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 30_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await test();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** The last part of a log file, for an error that says why a process did not start. */
export function logTail(read: () => string, chars = 3000): string {
  try {
    return read().slice(-chars);
  } catch {
    return '(no log)';
  }
}
