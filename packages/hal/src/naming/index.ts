export {
  CDI_VENDOR,
  compareDeviceIds,
  DEFAULT_ALIASES,
  type DeviceIdInput,
  deviceIdFor,
  fallbackClass,
  formatPciIdsName,
  type NameAliases,
  type NamedDeviceType,
  RESOURCE_NAMESPACE,
  type ResourceNameInput,
  type ResourceNaming,
  resourceNamingFor,
  validateResourceClass,
} from './contract.js';
export { groupIntoUnits, isVfioFunction, unitNaming, type VfioDeviceUnit, vfioDeviceUnit } from './device-unit.js';
export {
  checkPciIdsFile,
  findPciIds,
  loadPciIds,
  loadPciIdsFile,
  lookupNvidiaDeviceName,
  NVIDIA_VENDOR_ID,
  PCI_IDS_PATHS,
  type PciIdsDb,
  type PciIdsSource,
  parseNvidiaPciIds,
} from './pci-ids.js';
