export {
  describeHolder,
  findHolders,
  type HeldNodeKind,
  type Holder,
  type HolderScan,
  holdersOf,
  isVmProcess,
  vfioDevicesInUse,
} from './holders.js';
export { kernelRelease } from './kernel.js';
export { readVfioAliases, type VfioAlias, vfioModuleFor } from './modules-alias.js';
export { detectHostTee, type HostTee } from './tee.js';
