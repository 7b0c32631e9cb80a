export { type AllocationContext, allocate, preferredAllocation, type RefusalStatus } from './allocate.js';
export { type DeviceChange, type DeviceState, diffDeviceState, nextDeviceState } from './device-state.js';
export {
  buildInventory,
  type DeviceFunction,
  type DeviceType,
  type Inventory,
  type InventoryInput,
  type PluginDevice,
  type SkippedDevice,
  scanInventory,
} from './inventory.js';
export { formatList, type ListReport, listReport } from './list.js';
export { socketNameFor } from './names.js';
export type { PluginSettings } from './settings.js';
export { listAndWatchResponse } from './wire.js';
