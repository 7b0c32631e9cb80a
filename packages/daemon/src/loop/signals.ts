import type { Logger } from '../log/logger.js';

/** What `shutdownOnSignals` listens on and how it exits; the process by default, fakes in tests. */
export interface SignalTarget {
  on(signal: 'SIGTERM' | 'SIGINT', listener: (signal: NodeJS.Signals) => void): unknown;
}

export const FORCED_EXIT_CODE = 130;

/**
 * The first SIGTERM or SIGINT aborts the returned controller: the loop finishes the reconcile in
 * flight and the binary exits 0. A second one exits at once with 130, for an operator who means it.
 */
export function shutdownOnSignals(
  logger: Logger,
  options: { target?: SignalTarget; exit?: (code: number) => void } = {},
): AbortController {
  const target = options.target ?? process;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (!controller.signal.aborted) {
      logger.info({ event: 'daemon.shutdown', signal }, `${signal}: finishing the work in flight, then exiting`);
      controller.abort(new Error(`received ${signal}`));
      return;
    }
    logger.warn({ event: 'daemon.exit-forced', signal, exitCode: FORCED_EXIT_CODE }, `${signal} again: exiting now`);
    exit(FORCED_EXIT_CODE);
  };
  target.on('SIGTERM', onSignal);
  target.on('SIGINT', onSignal);
  return controller;
}
