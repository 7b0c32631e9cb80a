import type { HostRoot } from '../fs/index.js';

export type HostTee = 'sev-snp' | 'tdx' | 'none';

const TEE_PARAMETERS = {
  'sev-snp': 'sys/module/kvm_amd/parameters/sev_snp',
  tdx: 'sys/module/kvm_intel/parameters/tdx',
} as const;

/**
 * The KVM module parameters that enable a TEE (docs/facts/real-hosts.md#cpu-flags-for-sev-snp-and-tdx):
 * true for `Y`/`y`/`1`, false for any other value, absent when the module (or its TEE support) is not
 * there.
 */
export function kvmTeeParameters(sysfs: HostRoot): { sevSnp?: boolean; tdx?: boolean } {
  const enabled = (parameter: string) => {
    const value = sysfs.readOptional(parameter)?.trim().toLowerCase();
    return value === undefined ? undefined : value === 'y' || value === '1';
  };
  const sevSnp = enabled(TEE_PARAMETERS['sev-snp']);
  const tdx = enabled(TEE_PARAMETERS.tdx);
  return { ...(sevSnp === undefined ? {} : { sevSnp }), ...(tdx === undefined ? {} : { tdx }) };
}

/** The host's TEE for confidential VMs, from the KVM module parameters. */
export function detectHostTee(sysfs: HostRoot): HostTee {
  const kvm = kvmTeeParameters(sysfs);
  if (kvm.sevSnp) return 'sev-snp';
  if (kvm.tdx) return 'tdx';
  return 'none';
}
