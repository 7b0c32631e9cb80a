export {
  detectVfioModel,
  VFIO_DEVICE_MODEL_SETTINGS,
  type VfioDeviceModelSetting,
  type VfioHostModel,
} from './model.js';
export {
  checkDeviceNumber,
  type DeviceNodeKey,
  deviceNodesFor,
  hostDeviceNodesFor,
  IOMMUFD_PATH,
  noiommuCdevPath,
  noiommuGroupPath,
  VFIO_CONTAINER_PATH,
  VFIO_DEVICES_DIR,
  VFIO_DIR,
  type VfioModel,
  vfioCdevPath,
  vfioGroupPath,
} from './paths.js';
export { type WaitForPathOptions, waitForPath } from './wait.js';
