/**
 * VFIO device-node paths (docs/facts/kernel-sysfs-pci.md#device-nodes,
 * docs/facts/kernel-sysfs-pci.md#vfio-device-node-models). Host paths are relative to the host root
 * (for HostRoot); container paths are absolute and equal to the host path as the runtime sees it.
 * Every builder takes a checked non-negative integer, so no name ever reaches a path.
 */

import { GpuccError } from '../errors/index.js';

export type VfioModel = 'legacy' | 'iommufd' | 'noiommu';

export const VFIO_CONTAINER_PATH = 'dev/vfio/vfio';
export const IOMMUFD_PATH = 'dev/iommu';
export const VFIO_DIR = 'dev/vfio';
export const VFIO_DEVICES_DIR = 'dev/vfio/devices';

export function vfioGroupPath(group: number): string {
  return `${VFIO_DIR}/${checkDeviceNumber(group, 'IOMMU group number')}`;
}

export function vfioCdevPath(index: number): string {
  return `${VFIO_DEVICES_DIR}/vfio${checkDeviceNumber(index, 'vfio cdev number')}`;
}

export function noiommuGroupPath(group: number): string {
  return `${VFIO_DIR}/noiommu-${checkDeviceNumber(group, 'IOMMU group number')}`;
}

export function noiommuCdevPath(index: number): string {
  return `${VFIO_DEVICES_DIR}/noiommu-vfio${checkDeviceNumber(index, 'vfio cdev number')}`;
}

export interface DeviceNodeKey {
  /** IOMMU group number (legacy and no-IOMMU models). */
  group?: number | undefined;
  /** N of vfioN (iommufd model). */
  cdevIndex?: number | undefined;
}

/** Host paths (relative to the root) of the nodes one device needs in this model. */
export function hostDeviceNodesFor(model: VfioModel, key: DeviceNodeKey): string[] {
  switch (model) {
    case 'legacy':
      return [VFIO_CONTAINER_PATH, vfioGroupPath(checkDeviceNumber(key.group, 'IOMMU group number', model))];
    case 'iommufd':
      return [vfioCdevPath(checkDeviceNumber(key.cdevIndex, 'vfio cdev number', model))];
    case 'noiommu':
      return [VFIO_CONTAINER_PATH, noiommuGroupPath(checkDeviceNumber(key.group, 'IOMMU group number', model))];
  }
}

/**
 * The device nodes a container needs for one device, as absolute paths (host path == container path):
 * legacy `/dev/vfio/vfio` + `/dev/vfio/<group>`; iommufd `/dev/vfio/devices/vfio<N>`;
 * no-IOMMU `/dev/vfio/vfio` + `/dev/vfio/noiommu-<group>`.
 */
export function deviceNodesFor(model: VfioModel, key: DeviceNodeKey): string[] {
  return hostDeviceNodesFor(model, key).map((relPath) => `/${relPath}`);
}

/** A non-negative integer for a group or cdev number; anything else never reaches a name or a path. */
export function checkDeviceNumber(value: number | undefined, what: string, mode?: VfioModel): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  const inMode = mode ? ` in ${mode} mode` : '';
  throw new GpuccError('ERR_GPUCC_INVALID_DEVICE_NUMBER', `invalid ${what}${inMode}: ${String(value)}`, {
    hint:
      mode === 'iommufd'
        ? 'iommufd mode names devices by the N of /dev/vfio/devices/vfioN: bind the device to a VFIO driver first'
        : 'the device needs an IOMMU group: enable the IOMMU (intel_iommu=on / amd_iommu=on) and bind it to a VFIO driver',
    details: { what, value, mode },
  });
}
