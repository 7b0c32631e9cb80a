import path from 'node:path';
import { GpuccError, type HostRoot, type HostTee, parseLabelKey, parseLabelValue } from '@gpucc/hal';
import type { DoctorObservation } from './observe.js';

/**
 * The node's CC features as a Node Feature Discovery local feature file (NFD `local` source,
 * features.d): one `name=value` per line. Names with a domain keep it (NFD prefixes bare names with
 * feature.node.kubernetes.io/), so NFD turns each line into exactly this node label.
 */
export interface NfdFeatures {
  'nvidia.com/cc.capable': boolean;
  'nvidia.com/cc.tee': HostTee;
  'nvidia.com/cc.ppcie.capable': boolean;
  'nvidia.com/cc.iommu': boolean;
}

export function nfdFeatures(o: DoctorObservation): NfdFeatures {
  const gpus = o.devices.filter((d) => d.kind === 'gpu');
  const iommu = o.iommu.model !== 'noiommu' && o.iommu.groups > 0 && o.iommu.units.length > 0;
  // Capable = a confidential VM could get a GPU here: TEE, a real IOMMU and a GPU with a CC mode.
  const capable = o.tee !== 'none' && iommu && gpus.some((g) => g.ccCapable);
  return {
    'nvidia.com/cc.capable': capable,
    'nvidia.com/cc.tee': o.tee,
    'nvidia.com/cc.ppcie.capable': capable && o.devices.every((d) => d.ppcieCapable),
    'nvidia.com/cc.iommu': iommu,
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
