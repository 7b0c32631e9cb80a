import { type HostTee, parseLabelKey, parseLabelValue } from '@gpucc/hal';
import type { DoctorObservation } from './observe.js';

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
  };
}

/** The file's text; every name and value checked as a label key and value before it is written. */
export function renderNfdFile(features: NfdFeatures): string {
  const lines = Object.entries(features).map(([key, value]) => {
    const text = String(value);
    return `${parseLabelKey(key)}=${parseLabelValue(text, undefined, key)}`;
  });
  return `# written by cc-manager doctor: CC features of this node\n${lines.join('\n')}\n`;
}
