import { GpuccError } from '../errors/index.js';

export const CC_MODES = ['on', 'off', 'devtools', 'ppcie'] as const;
export type CcMode = (typeof CC_MODES)[number];

export function isCcMode(value: unknown): value is CcMode {
  return typeof value === 'string' && (CC_MODES as readonly string[]).includes(value);
}

/** Validates a CC mode (as found in the `nvidia.com/cc.mode` label); case matters, as upstream compares exactly. */
export function parseCcMode(value: string): CcMode {
  if (isCcMode(value)) return value;
  const lower = String(value).toLowerCase();
  throw new GpuccError('ERR_GPUCC_INVALID_CC_MODE', `invalid CC mode ${JSON.stringify(value)}`, {
    hint: isCcMode(lower) ? `modes are lower-case: use ${JSON.stringify(lower)}` : `use one of: ${CC_MODES.join(', ')}`,
    details: { value, allowed: CC_MODES },
  });
}
