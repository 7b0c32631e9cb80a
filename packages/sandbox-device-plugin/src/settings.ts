import { GpuccError, type NameAliases, type PciIdsSource, resourceNamingFor } from '@gpucc/hal';
import type { TopologyPolicy } from './topology.js';

/** What decides which devices are advertised and how they are named; shared by `run` and `list`. */
export interface PluginSettings {
  /** Advertise NVSwitches too (as nvidia.com/nvswitch by default). */
  nvswitches: boolean;
  /** P_GPU_ALIAS / NVSWITCH_ALIAS: unset → pgpu / nvswitch; "" → per-model names from pci.ids. */
  aliases: NameAliases;
  /** Name each allocated device in `cdi_devices` as well (`nvidia.com/pgpu=12`). */
  cdiDevices: boolean;
  /** Where per-model names come from when the host root has no pci.ids (`--pci-ids`, `GPUCC_PCI_IDS`). */
  pciIds?: PciIdsSource;
  /** `enforce`: refuse sets a confidential VM cannot boot with; `warn`: allocate them with a warning. */
  ccTopology: TopologyPolicy;
}

/**
 * Refuses settings that cannot work before anything is served: an alias that is not a valid
 * resource name and CDI class (ERR_GPUCC_INVALID_RESOURCE_NAME), or GPUs and NVSwitches under one
 * resource name, which would make one pod's GPU request take switches.
 */
export function checkSettings(settings: PluginSettings): PluginSettings {
  const { gpuAlias, nvswitchAlias } = settings.aliases;
  const named = (deviceType: 'gpu' | 'nvswitch', alias: string | undefined) =>
    alias === ''
      ? undefined
      : resourceNamingFor({ deviceType, pciDeviceId: 0, aliases: settings.aliases }).resourceName;
  const gpu = named('gpu', gpuAlias);
  const nvswitch = named('nvswitch', nvswitchAlias);
  if (settings.nvswitches && gpu !== undefined && gpu === nvswitch) {
    throw new GpuccError(
      'ERR_GPUCC_INVALID_CONFIG',
      `GPUs and NVSwitches would share the resource name ${gpu} (P_GPU_ALIAS = NVSWITCH_ALIAS)`,
      {
        hint: 'give NVSwitches their own name: unset NVSWITCH_ALIAS (nvidia.com/nvswitch) or choose another',
        details: { gpuAlias, nvswitchAlias },
      },
    );
  }
  return settings;
}

/** pci.ids (1.3 MB on a real host) is needed only for per-model names (an alias set to ""). */
export function needsPciIds(settings: PluginSettings): boolean {
  return settings.aliases.gpuAlias === '' || settings.aliases.nvswitchAlias === '';
}
