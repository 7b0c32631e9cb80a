export { CC_MODES, type CcMode, isCcMode, parseCcMode } from './cc-mode.js';
export { type CdiNamePart, isCdiName, parseCdiKind, parseCdiName } from './cdi-name.js';
export { isLabelKey, isLabelValue, parseLabelKey, parseLabelValue } from './k8s-label.js';
export {
  comparePciAddresses,
  functionOf,
  isPciAddress,
  type PciAddress,
  parsePciAddress,
  slotOf,
} from './pci-address.js';
