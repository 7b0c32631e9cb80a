import { DEFAULT_ALIASES, GpuccError, isGpuccError, type NameAliases, validateResourceClass } from '@gpucc/hal';
import type { Command } from 'commander';
import * as z from 'zod/mini';
import { mirroredOption } from './options.js';

/**
 * The naming contract's two settings, shared by kata-manager and the device plugin so that both read
 * the same flags and variables (spelled as NVIDIA's sandbox device plugin spells them). An empty value
 * is meaningful ("" = per-model names) and distinct from unset (pgpu / nvswitch).
 */
export function addAliasOptions(command: Command): Command {
  return command
    .addOption(
      mirroredOption(
        '--gpu-alias <name>',
        'GPU resource name and CDI class: unset = pgpu (nvidia.com/pgpu); "" = per model from pci.ids (nvidia.com/GH100_H100_PCIE)',
        { env: 'P_GPU_ALIAS' },
      ),
    )
    .addOption(
      mirroredOption(
        '--nvswitch-alias <name>',
        'NVSwitch resource name and CDI class: unset = nvswitch (nvidia.com/nvswitch); "" = per model from pci.ids',
        { env: 'NVSWITCH_ALIAS' },
      ),
    );
}

/**
 * The parsed options as the hal's naming contract takes them; unset stays unset. One rule for both
 * binaries: GPUs and NVSwitches never share a name (a pod's GPU request would take switches, and a
 * CDI kind would mix both), whether the two aliases are equal or one equals the other's default.
 */
export function aliasesOf(o: { gpuAlias?: string | undefined; nvswitchAlias?: string | undefined }): NameAliases {
  const gpu = o.gpuAlias ?? DEFAULT_ALIASES.gpu;
  const nvswitch = o.nvswitchAlias ?? DEFAULT_ALIASES.nvswitch;
  if (gpu !== '' && gpu === nvswitch) {
    throw new GpuccError(
      'ERR_GPUCC_INVALID_CONFIG',
      `GPUs and NVSwitches would share the resource name and CDI kind nvidia.com/${gpu} (--gpu-alias (P_GPU_ALIAS) ${JSON.stringify(o.gpuAlias ?? null)}, --nvswitch-alias (NVSWITCH_ALIAS) ${JSON.stringify(o.nvswitchAlias ?? null)})`,
      {
        hint: `give each its own name: unset both (nvidia.com/${DEFAULT_ALIASES.gpu}, nvidia.com/${DEFAULT_ALIASES.nvswitch}) or choose two different aliases`,
        details: { gpuAlias: o.gpuAlias ?? null, nvswitchAlias: o.nvswitchAlias ?? null },
      },
    );
  }
  return {
    ...(o.gpuAlias === undefined ? {} : { gpuAlias: o.gpuAlias }),
    ...(o.nvswitchAlias === undefined ? {} : { nvswitchAlias: o.nvswitchAlias }),
  };
}

/**
 * An alias is a CDI class and a Kubernetes resource name at once; "" (per model) is allowed. One
 * schema for both binaries, so a bad P_GPU_ALIAS gives the same ERR_GPUCC_INVALID_CONFIG (exit 2),
 * naming the flag and its variable, before either reads the host.
 */
const alias = z.optional(z.string()).check(
  z.superRefine((value, ctx) => {
    if (value === undefined || value === '') return;
    try {
      validateResourceClass(value);
    } catch (error) {
      ctx.addIssue({
        code: 'custom',
        message: isGpuccError(error) ? `${error.message}; ${error.hint}` : String(error),
      });
    }
  }),
);

/** The zod fields of addAliasOptions, for readOptions. */
export const aliasSchema = { gpuAlias: alias, nvswitchAlias: alias };
