import type { CcMode } from '@gpucc/hal';

/** The node-label contract (docs/facts/cc-mode.md#node-labels). */
export const CC_MODE_LABEL = 'nvidia.com/cc.mode';
export const CC_MODE_STATE_LABEL = 'nvidia.com/cc.mode.state';
export const CC_READY_STATE_LABEL = 'nvidia.com/cc.ready.state';

export type ModeState = CcMode | 'failed';

/**
 * `nvidia.com/cc.ready.state` for a state: Kata runtime classes select `true` (CC) or `false` (no CC).
 * devtools gets `devtools`: CC is on but not attested for production, so neither class may match it
 * by accident (upstream writes "" there, which matches neither but also tells nothing, and which a
 * `NotIn: ["true"]` affinity would take); a cluster that wants devtools pods selects it on purpose.
 * failed, and a switch in progress, get "" as upstream: no runtime class schedules onto them.
 */
export function readyStateFor(state: ModeState): string {
  switch (state) {
    case 'on':
    case 'ppcie':
      return 'true';
    case 'off':
      return 'false';
    case 'devtools':
      return 'devtools';
    case 'failed':
      return '';
  }
}

/** Both state labels, written together in one merge patch. */
export function stateLabels(state: ModeState): Record<string, string> {
  return { [CC_MODE_STATE_LABEL]: state, [CC_READY_STATE_LABEL]: readyStateFor(state) };
}

/** The value of `cc.ready.state` while GPUs are being reset: no runtime class matches it. */
export const READY_STATE_SWITCHING = '';
