export { CC_MODES, type CcMode, isCcMode, parseCcMode } from './cc-mode.js';
export { type CdiNamePart, isCdiName, parseCdiKind, parseCdiName } from './cdi-name.js';
export { isLabelKey, isLabelValue, parseLabelKey, parseLabelValue } from './k8s-label.js';
export {
  comparePciAddresses,
  functionOf,
  isPciAddress,
  isVmdDomainAddress,
  PCI_ADDRESS_PATTERN,
  type PciAddress,
  parsePciAddress,
  pciDomainOf,
  slotOf,
} from './pci-address.js';
