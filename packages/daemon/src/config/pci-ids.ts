import { checkPciIdsFile, type PciIdsSource } from '@gpucc/hal';
import type { Command } from 'commander';
import * as z from 'zod/mini';
import { mirroredOption } from './options.js';
import { readOptions } from './read-options.js';

/**
 * `--pci-ids <file>` (`GPUCC_PCI_IDS`): the pci.ids that names models when the host root has none,
 * for every binary that names devices per model (kata-manager and the device plugin read it by the
 * same rule, so their names agree). A path of this machine or container, never joined under the host
 * root: the gpucc images set it to their own copy, `/usr/share/misc/pci.ids`. "" = no fallback.
 */
export function addPciIdsOption(command: Command): Command {
  return command.addOption(
    mirroredOption(
      '--pci-ids <file>',
      'pci.ids for per-model names when the host root has none: a file of this machine or container, not under --host-root ("" = none)',
    ),
  );
}

const pciIdsSchema = z.object({ pciIds: z.optional(z.string()) });

/**
 * The parsed `--pci-ids` as the hal's `loadPciIds` takes it. The file is checked here, at start-up,
 * whether or not the host has its own pci.ids: a missing or unreadable one stops the binary with
 * ERR_GPUCC_PCI_IDS_UNREADABLE (exit 2) instead of turning names into device IDs later.
 */
export function readPciIdsSource(command: Command): PciIdsSource {
  const { pciIds } = readOptions(command, pciIdsSchema);
  if (pciIds === undefined || pciIds.trim() === '') return {};
  return { fallbackFile: checkPciIdsFile(pciIds) };
}
