import { GpuccError } from '@gpucc/hal';

export interface BackoffSettings {
  initialMs: number;
  maxMs: number;
  factor: number;
}

/** The wait before retry number `failures` (1 = after the first failure): initial * factor^(n-1), capped. */
export function backoffDelay(settings: BackoffSettings, failures: number): number {
  const exponent = Math.max(0, failures - 1);
  return Math.min(settings.maxMs, settings.initialMs * settings.factor ** exponent);
}

export function checkBackoff(settings: BackoffSettings): void {
  const { initialMs, maxMs, factor } = settings;
  const ok = initialMs > 0 && maxMs >= initialMs && factor >= 1 && [initialMs, maxMs, factor].every(Number.isFinite);
  if (!ok) {
    throw new GpuccError('ERR_GPUCC_INVALID_CONFIG', `invalid backoff ${JSON.stringify(settings)}`, {
      hint: 'use initialMs > 0, maxMs >= initialMs and factor >= 1',
      details: { ...settings },
    });
  }
}
