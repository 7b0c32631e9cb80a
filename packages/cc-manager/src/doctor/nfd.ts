import path from 'node:path';
import {
  GpuccError,
  type HostRoot,
  type HostTee,
  parseKernelVersion,
  parseLabelKey,
  parseLabelValue,
} from '@gpucc/hal';
import type { DoctorObservation } from './observe.js';
import { lockdownWord } from './report.js';

/**
 * The node's CC features as a Node Feature Discovery local feature file (NFD `local` source,
 * features.d): one `name=value` per line. Names with a domain keep it (NFD prefixes bare names with
 * feature.node.kubernetes.io/), so NFD turns each line into exactly this node label.
 */
export interface NfdFeatures {
  /** No doctor check failed: what the standalone overlay's DaemonSets select on (deploy/README.md). */
  'gpucc.io/doctor.passed': boolean;
  /** Read by the GPU Operator's sandbox validator (nvidia-validator: CCCapableLabelKey). */
  'nvidia.com/cc.capable': boolean;
  'nvidia.com/cc.tee': HostTee;
  'nvidia.com/cc.ppcie.capable': boolean;
  'nvidia.com/cc.iommu': boolean;
  /** `amd`, `intel`, `other` or `unknown` (no cpuinfo). */
  'gpucc.io/host.cpu.vendor': string;
  /** The kernel's upstream version `major.minor.patch` (the whole release may hold characters a label cannot). */
  'gpucc.io/host.kernel.version': string;
  /** `none`, `integrity`, `confidentiality`, `not-built` or `unknown`. */
  'gpucc.io/host.lockdown': string;
  /** The CPU flag (BIOS) and the KVM parameter both on: KVM can start such guests. */
  'gpucc.io/host.sev-snp': boolean;
  'gpucc.io/host.tdx': boolean;
}

/**
 * gpucc's own label prefix: a domain no other writer uses, so labels under it are ours alone (NFD
 * ≥ 0.13 publishes local features in any namespace outside kubernetes.io).
 */
export const GPUCC_LABEL_PREFIX = 'gpucc.io/';
export const DOCTOR_PASSED_LABEL = `${GPUCC_LABEL_PREFIX}doctor.passed` as const;

export function nfdFeatures(o: DoctorObservation, passed: boolean): NfdFeatures {
  const gpus = o.devices.filter((d) => d.kind === 'gpu');
  const iommu = o.iommu.model !== 'noiommu' && o.iommu.groups > 0 && o.iommu.units.length > 0;
  // Capable = a confidential VM could get a GPU here: TEE, a real IOMMU and a GPU with a CC mode.
  const capable = o.tee !== 'none' && iommu && gpus.some((g) => g.ccCapable);
  return {
    [DOCTOR_PASSED_LABEL]: passed,
    'nvidia.com/cc.capable': capable,
    'nvidia.com/cc.tee': o.tee,
    'nvidia.com/cc.ppcie.capable': capable && o.devices.every((d) => d.ppcieCapable),
    'nvidia.com/cc.iommu': iommu,
    ...hostFeatures(o),
  };
}

function hostFeatures(o: DoctorObservation) {
  const version = parseKernelVersion(o.host.kernel);
  return {
    'gpucc.io/host.cpu.vendor': o.host.cpu?.vendor ?? 'unknown',
    'gpucc.io/host.kernel.version': version ? `${version.major}.${version.minor}.${version.patch}` : 'unknown',
    'gpucc.io/host.lockdown': lockdownWord(o.lockdown),
    'gpucc.io/host.sev-snp': o.host.cpu?.sevSnp === true && o.kvm.sevSnp === true,
    'gpucc.io/host.tdx': o.host.cpu?.tdx === true && o.kvm.tdx === true,
  };
}

/** The first line of every feature file the doctor writes: how it knows a file is its own. */
export const NFD_FILE_HEADER = '# written by cc-manager doctor';

/** The file's text; every name and value checked as a label key and value before it is written. */
export function renderNfdFile(features: NfdFeatures): string {
  const lines = Object.entries(features).map(([key, value]) => {
    const text = String(value);
    return `${parseLabelKey(key)}=${parseLabelValue(text, undefined, key)}`;
  });
  return `${NFD_FILE_HEADER}: CC features of this node\n${lines.join('\n')}\n`;
}

/**
 * The doctor's one write must not replace what it did not write (the ownership rule kata-manager
 * follows for CDI specs) nor land outside a `features.d/` directory (NFD's local source), unless
 * forced. `file` is the host path relative to the root; checked before anything is written.
 */
export function checkNfdTarget(sysfs: HostRoot, file: string, force: boolean): void {
  if (force) return;
  if (path.posix.basename(path.posix.dirname(file)) !== 'features.d') {
    throw new GpuccError(
      'ERR_GPUCC_NFD_FILE_OUTSIDE_FEATURES_DIR',
      `--nfd-features-file /${file} is not in a features.d directory`,
      {
        hint: 'NFD reads local feature files from /etc/kubernetes/node-feature-discovery/features.d/: write there, or pass --force',
        details: { path: `/${file}` },
      },
    );
  }
  const current = sysfs.readOptional(file);
  if (current !== undefined && !current.startsWith(NFD_FILE_HEADER)) {
    throw new GpuccError(
      'ERR_GPUCC_NFD_FILE_NOT_OURS',
      `${sysfs.display(file)} exists and was not written by cc-manager doctor`,
      {
        hint: 'give the doctor a file of its own, or pass --force to replace this one',
        details: { path: `/${file}` },
      },
    );
  }
}
