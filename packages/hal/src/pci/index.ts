export {
  classifyPci,
  isBridge,
  isGpu,
  isNvidia,
  isNvSwitch,
  isVirtualFunction,
  NVSWITCH_CLASS,
} from './classify.js';
export { PCI_DEVICES_DIR, PCI_DRIVERS_DIR, readPciDevice } from './device.js';
export { discoverPci } from './discover.js';
export { IOMMU_GROUPS_DIR } from './iommu-groups.js';
export {
  hostDeviceNodesOf,
  IncrementalObserver,
  type PciEvent,
  type PciObservation,
  PciObserver,
  type PciPass,
  pciEventOf,
} from './observer.js';
export { type PciChanges, refreshPci } from './refresh.js';
export { cardFunctions, groupMembers, nvidiaDevices } from './topology.js';
export type { PciDevice, PciKind, PciTopology, SriovInfo, VfioCdev } from './types.js';
export { BEHIND_VMD_REASON, behindVmdError, vmdControllerOf } from './vmd.js';
