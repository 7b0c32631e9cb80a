// The device-plugin directory without the gRPC half of the kubelet module (@gpucc/hal/kubelet).
export { DEVICE_PLUGIN_DIR } from '../kubelet/constants.js';
export {
  KUBELET_CHECKPOINT_PATH,
  type KubeletCheckpoint,
  type PodDeviceAllocation,
  parseKubeletCheckpoint,
  readKubeletCheckpoint,
} from './kubelet-checkpoint.js';
export {
  type AdvertisedDeviceRecord,
  advertisedKey,
  CC_MANAGER_READY_MARKER,
  DEVICE_PLUGIN_STATE_FILE,
  readAdvertisedDevices,
  readVfioManagerState,
  VFIO_MANAGER_STATE,
  VFIO_MANAGER_STATE_FILE,
  type VfioDeviceRecord,
  writeAdvertisedDevices,
} from './operand-files.js';
