import { type CcMode, type GpuccError, type HostTee, isGpuccError, parseCcMode } from '@gpucc/hal';

/** `ppcie` cannot be a cluster-wide default (the operator's CRD has on, off, devtools only). */
export const DEFAULT_MODES = ['on', 'off', 'devtools'] as const;
export type DefaultMode = (typeof DEFAULT_MODES)[number];

export type Desired =
  | { ok: true; mode: CcMode; source: 'label' | 'default'; warning?: string }
  | { ok: false; value: string; error: GpuccError };

/**
 * The mode to converge to (docs/facts/cc-mode.md#desired-mode-and-defaults): the label when set and valid; absent or
 * empty means the default, which a host without a TEE overrides to `off` (a CC GPU is unusable to a host
 * without one). An explicit label is applied even there, with a warning. An invalid label is an
 * error: nothing is touched for it. Pure.
 */
export function resolveDesired(label: string | undefined, defaultMode: DefaultMode, tee: HostTee): Desired {
  if (label === undefined || label === '') {
    if (tee === 'none' && defaultMode !== 'off') {
      return {
        ok: true,
        mode: 'off',
        source: 'default',
        warning: `Overriding default CC mode: ${defaultMode} to off because the host does not support CC`,
      };
    }
    return { ok: true, mode: defaultMode, source: 'default' };
  }
  try {
    const mode = parseCcMode(label);
    return {
      ok: true,
      mode,
      source: 'label',
      ...(tee === 'none' && mode !== 'off'
        ? {
            warning: `CC mode ${mode} was asked by the label on a host without SEV-SNP or TDX: the GPUs will not be usable by a confidential VM here`,
          }
        : {}),
    };
  } catch (error) {
    if (isGpuccError(error)) return { ok: false, value: label, error };
    throw error;
  }
}
