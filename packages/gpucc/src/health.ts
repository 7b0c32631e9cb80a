import type { OperandName, OperandState } from './observe.js';

/** What an operand's /readyz said: ready, not ready (with its reason), or nothing (not listening there). */
export type ReadyAnswer = { ready: true } | { ready: false; reason: string } | undefined;

/**
 * Asks an operand's /readyz (the daemon's health server: 200 `{ready:true}`, 503 `{ready:false,
 * reason}`). No answer within the timeout, or a refused connection, is `undefined`: the operand is not
 * listening at that address, which says nothing about the host's files.
 */
export async function probeReady(address: string, timeoutMs = 500): Promise<ReadyAnswer> {
  try {
    const response = await fetch(`http://${address}/readyz`, { signal: AbortSignal.timeout(timeoutMs) });
    if (response.status === 200) return { ready: true };
    const body = (await response.json().catch(() => ({}))) as { reason?: unknown };
    return { ready: false, reason: typeof body.reason === 'string' ? body.reason : `HTTP ${response.status}` };
  } catch {
    return undefined;
  }
}

/** The operands' states with what their health endpoints answered laid over what their files say. */
export async function withHealth(
  states: OperandState[],
  addresses: Partial<Record<OperandName, string>>,
  probe: (address: string) => Promise<ReadyAnswer> = probeReady,
): Promise<OperandState[]> {
  return Promise.all(
    states.map(async (state): Promise<OperandState> => {
      const address = addresses[state.name];
      if (address === undefined) return state;
      const answer = await probe(address);
      if (answer === undefined) return { ...state, evidence: `${state.evidence}; no answer on ${address}/readyz` };
      return answer.ready
        ? { name: state.name, state: 'ready', evidence: `${address}/readyz` }
        : { name: state.name, state: 'not ready', evidence: `${address}/readyz: ${answer.reason}` };
    }),
  );
}
