import type { Sysfs } from '../fs/index.js';
import { IOMMUFD_PATH, type VfioModel } from './paths.js';

export interface VfioHostModel {
  model: VfioModel;
  /** Whether the host has a working IOMMU: `/sys/kernel/iommu_groups` is non-empty. */
  iommuEnabled: boolean;
  /** `/dev/iommu` exists (the kernel has iommufd). */
  iommufd: boolean;
  /** vfio's `enable_unsafe_noiommu_mode` is Y. */
  noiommuParameter: boolean;
}

const NOIOMMU_PARAMETER = 'sys/module/vfio/parameters/enable_unsafe_noiommu_mode';

/**
 * Which VFIO device-node model this host uses (kernel-sysfs-pci.md §5); one model per host, used for
 * plugin IDs, CDI names and Allocate paths alike.
 * - no-IOMMU when vfio's unsafe parameter is Y and there are no IOMMU groups. With an IOMMU, vfio
 *   uses real groups even when the parameter is set, so the parameter alone does not decide it;
 *   this test comes first because `/dev/iommu` can exist on a host without an IOMMU.
 * - iommufd when `/dev/iommu` exists (what the sandbox device plugin checks);
 * - legacy group nodes otherwise.
 */
export function detectVfioModel(sysfs: Sysfs): VfioHostModel {
  const iommuEnabled = sysfs.readdir('sys/kernel/iommu_groups').length > 0;
  const iommufd = sysfs.exists(IOMMUFD_PATH);
  const noiommuParameter = isYes(sysfs.readOptional(NOIOMMU_PARAMETER));
  const model: VfioModel = noiommuParameter && !iommuEnabled ? 'noiommu' : iommufd ? 'iommufd' : 'legacy';
  return { model, iommuEnabled, iommufd, noiommuParameter };
}

// Boolean module parameters print `Y` or `N`; `1` is accepted as other tools do.
function isYes(value: string | undefined): boolean {
  const text = value?.trim().toLowerCase();
  return text === 'y' || text === '1';
}
