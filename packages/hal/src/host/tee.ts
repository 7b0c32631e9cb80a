import type { HostRoot } from '../fs/index.js';

export type HostTee = 'sev-snp' | 'tdx' | 'none';

const TEE_PARAMETERS: ReadonlyArray<[HostTee, string]> = [
  ['sev-snp', 'sys/module/kvm_amd/parameters/sev_snp'],
  ['tdx', 'sys/module/kvm_intel/parameters/tdx'],
];

/**
 * The host's TEE for confidential VMs, from the KVM module parameters: `Y`/`y`/`1` means enabled,
 * a missing file means the module (or its support) is absent.
 */
export function detectHostTee(sysfs: HostRoot): HostTee {
  for (const [tee, parameter] of TEE_PARAMETERS) {
    const value = sysfs.readOptional(parameter)?.trim().toLowerCase();
    if (value === 'y' || value === '1') return tee;
  }
  return 'none';
}
