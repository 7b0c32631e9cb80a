import type { HostRoot } from '../fs/index.js';
import { IOMMUFD_PATH, type VfioModel } from './paths.js';

/**
 * `--vfio-device-model`: which VFIO interface a published device uses
 * (docs/facts/kernel-sysfs-pci.md#vfio-cdevs-per-device). `auto` decides per device: its cdev where it
 * has one and the host has `/dev/iommu`, else its group; `iommufd` requires the cdev; `legacy` always
 * uses the group. A no-IOMMU host uses its no-IOMMU nodes whatever the setting.
 */
export type VfioDeviceModelSetting = 'auto' | 'legacy' | 'iommufd';
export const VFIO_DEVICE_MODEL_SETTINGS: readonly VfioDeviceModelSetting[] = ['auto', 'legacy', 'iommufd'];

export interface VfioHostModel {
  model: VfioModel;
  /** Whether the host has a working IOMMU: IOMMU groups exist and they are not no-IOMMU fakes. */
  iommuEnabled: boolean;
  /** `/dev/iommu` exists (the kernel has iommufd). */
  iommufd: boolean;
  /** vfio's `enable_unsafe_noiommu_mode` is Y. */
  noiommuParameter: boolean;
}

const NOIOMMU_PARAMETER = 'sys/module/vfio/parameters/enable_unsafe_noiommu_mode';

/**
 * Which VFIO device-node model this host offers (docs/facts/kernel-sysfs-pci.md#vfio-device-node-models). Each
 * published device then takes its group node or its cdev by `deviceModelOf`; its plugin ID, CDI name
 * and Allocate paths follow that one decision.
 * - no-IOMMU when vfio's unsafe parameter is Y and the host has no IOMMU unit (`/sys/class/iommu`
 *   empty). Groups are no sign: in no-IOMMU mode vfio makes a fake group per bound device, so
 *   `/sys/kernel/iommu_groups` fills up. With a real IOMMU, vfio uses real groups even when the
 *   parameter is set. This test comes first because `/dev/iommu` can exist without an IOMMU.
 * - iommufd when `/dev/iommu` exists (what NVIDIA's sandbox device plugin checks). That is the host's
 *   capability only: a kernel without CONFIG_VFIO_DEVICE_CDEV has `/dev/iommu` and no cdevs, so each
 *   published device is decided on its own (naming/device-unit.ts, `deviceModelOf`);
 * - legacy group nodes otherwise.
 */
export function detectVfioModel(sysfs: HostRoot): VfioHostModel {
  const groups = sysfs.readdir('sys/kernel/iommu_groups').length > 0;
  const iommuUnits = sysfs.readdir('sys/class/iommu').length > 0;
  const iommufd = sysfs.exists(IOMMUFD_PATH);
  const noiommuParameter = isYes(sysfs.readOptional(NOIOMMU_PARAMETER));
  const noiommu = noiommuParameter && !iommuUnits;
  const model: VfioModel = noiommu ? 'noiommu' : iommufd ? 'iommufd' : 'legacy';
  return { model, iommuEnabled: groups && !noiommu, iommufd, noiommuParameter };
}

// Boolean module parameters print `Y` or `N`; `1` is accepted as other tools do.
function isYes(value: string | undefined): boolean {
  const text = value?.trim().toLowerCase();
  return text === 'y' || text === '1';
}
