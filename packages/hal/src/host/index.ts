export {
  type CpuFacts,
  type CpuVendor,
  factsFromSystemInformation,
  type HostFacts,
  parseCpuinfo,
  parseOsRelease,
  readHostFacts,
  rootedHostFacts,
  SEV_SNP_FLAG,
  type SystemInformation,
  TDX_HOST_FLAG,
} from './facts.js';
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
export { type KernelVersion, kernelAtLeast, kernelRelease, parseKernelVersion } from './kernel.js';
export {
  LOCKDOWN_FILE,
  LOCKDOWN_MODES,
  type LockdownMode,
  type LockdownState,
  lockdownBlockingBars,
  parseLockdown,
  readLockdown,
  SECURITYFS_DIR,
} from './lockdown.js';
export { readVfioAliases, type VfioAlias, vfioModuleFor } from './modules-alias.js';
export { detectHostTee, type HostTee, kvmTeeParameters } from './tee.js';
