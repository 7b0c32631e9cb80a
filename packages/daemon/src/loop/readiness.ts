import type { ReconcileLoopState } from './reconcile-loop.js';

export interface Readiness {
  ready: boolean;
  reason?: string;
}

/**
 * The usual readiness of an operand: ready once a reconcile has succeeded and the last one did not
 * fail. Binaries with more to say (the device plugin's registration) combine this with their own.
 */
export function loopReadiness(state: ReconcileLoopState): Readiness {
  if (state.stopped) return { ready: false, reason: 'stopping' };
  if (state.consecutiveFailures > 0) {
    const why = state.lastOutcome?.reason ?? 'unknown error';
    return { ready: false, reason: `last ${state.consecutiveFailures} reconcile(s) failed: ${why}` };
  }
  if (state.lastSuccessAt === undefined) return { ready: false, reason: 'no reconcile has finished yet' };
  return { ready: true };
}
