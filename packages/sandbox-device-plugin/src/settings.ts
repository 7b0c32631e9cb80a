import type { NameAliases, PciIdsSource, VfioDeviceModelSetting } from '@gpucc/hal';
import type { TopologyPolicy } from './topology.js';

/** What decides which devices are advertised and how they are named; shared by `run` and `list`. */
export interface PluginSettings {
  /** Advertise NVSwitches too (as nvidia.com/nvswitch by default). */
  nvswitches: boolean;
  /** P_GPU_ALIAS / NVSWITCH_ALIAS: unset → pgpu / nvswitch; "" → per-model names from pci.ids. */
  aliases: NameAliases;
  /** `--vfio-device-model`: each device's group node or its cdev (the hal decides per device). */
  deviceModel: VfioDeviceModelSetting;
  /** Name each allocated device in `cdi_devices` as well (`nvidia.com/pgpu=12`). */
  cdiDevices: boolean;
  /** Where per-model names come from when the host root has no pci.ids (`--pci-ids`, `GPUCC_PCI_IDS`). */
  pciIds?: PciIdsSource;
  /** `enforce`: refuse sets a confidential VM cannot boot with; `warn`: allocate them with a warning. */
  ccTopology: TopologyPolicy;
}

/** pci.ids (1.3 MB on a real host) is needed only for per-model names (an alias set to ""). */
export function needsPciIds(settings: PluginSettings): boolean {
  return settings.aliases.gpuAlias === '' || settings.aliases.nvswitchAlias === '';
}
