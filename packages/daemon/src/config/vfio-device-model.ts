import { VFIO_DEVICE_MODEL_SETTINGS, type VfioDeviceModelSetting } from '@gpucc/hal';
import type { Command } from 'commander';
import * as z from 'zod/mini';
import { mirroredOption } from './options.js';

/**
 * `--vfio-device-model` (`GPUCC_VFIO_DEVICE_MODEL`): which VFIO interface each published device uses,
 * shared by kata-manager and the device plugin so that a CDI name and a device-plugin ID always agree.
 * The decision itself is the hal's (`deviceModelOf`).
 */
export function addVfioDeviceModelOption(command: Command): Command {
  return command.addOption(
    mirroredOption(
      '--vfio-device-model <model>',
      `VFIO interface per device: ${VFIO_DEVICE_MODEL_SETTINGS.join(', ')}; auto = the cdev /dev/vfio/devices/vfioN where the device has one and /dev/iommu exists, else the group /dev/vfio/<group>; iommufd = the cdev or a coded error; legacy = always the group`,
      { default: 'auto' },
    ),
  );
}

/** The zod field of addVfioDeviceModelOption, for readOptions: a bad value lists the allowed ones. */
export const vfioDeviceModelSchema = {
  vfioDeviceModel: z.enum(VFIO_DEVICE_MODEL_SETTINGS as [VfioDeviceModelSetting, ...VfioDeviceModelSetting[]]),
};
