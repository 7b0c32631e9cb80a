import type { HostRoot } from '../fs/index.js';
import { kernelRelease } from './kernel.js';

export interface VfioAlias {
  /** The pattern after `vfio_pci:`, with `*` wildcards, matched against a modalias after `pci:`. */
  pattern: string;
  module: string;
  wildcards: number;
  regex: RegExp;
}

/**
 * The `alias vfio_pci:<pattern> <module>` lines of the host's modules.alias: how the kernel names
 * VFIO variant drivers (e.g. nvgrace_gpu_vfio_pci for Grace GPUs). Missing file: no variants.
 */
export function readVfioAliases(sysfs: HostRoot): VfioAlias[] {
  const text = sysfs.readOptional(`lib/modules/${kernelRelease(sysfs)}/modules.alias`) ?? '';
  const aliases: VfioAlias[] = [];
  for (const line of text.split('\n')) {
    const match = /^alias vfio_pci:(\S+) (\S+)$/.exec(line.trim());
    if (!match) continue;
    const pattern = match[1]!;
    const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*');
    aliases.push({
      pattern,
      module: match[2]!,
      wildcards: pattern.split('*').length - 1,
      regex: new RegExp(`^${escaped}$`, 'i'),
    });
  }
  return aliases;
}

/**
 * The VFIO driver module for a device: the matching alias with the fewest wildcards (the most
 * specific), else plain `vfio_pci`.
 */
export function vfioModuleFor(modalias: string, aliases: readonly VfioAlias[]): string {
  const id = modalias.trim().replace(/^pci:/, '');
  let best: VfioAlias | undefined;
  for (const alias of aliases) {
    if (alias.regex.test(id) && (best === undefined || alias.wildcards < best.wildcards)) best = alias;
  }
  return best?.module ?? 'vfio_pci';
}
