export {
  bindDevice,
  clearDriverOverride,
  currentDriver,
  currentOverride,
  devicePath,
  probeDevice,
  registeredDriverName,
  requireDriver,
  resetDevice,
  setDriverOverride,
  takeNvidiaUnbindLock,
  unbindDevice,
  validateDriverName,
} from './driver.js';
export { isVfioDriver, isViableGroupMember } from './vfio.js';
