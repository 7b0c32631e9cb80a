import { IncrementalObserver, type PciIdsDb } from '@gpucc/hal';
import { buildInventory, type Inventory, type InventorySettings } from './inventory.js';

export interface ScanInput extends InventorySettings {
  pciIds: PciIdsDb | undefined;
}

/**
 * Device discovery for the run mode (the hal's `IncrementalObserver`): a change event reads again
 * only the functions a device node that appeared or vanished under `dev/vfio` concerns, and probes
 * again only the nodes the events named or those functions need. The inventory is then built from
 * the whole topology as always, so it is what a full scan would give, provided the events named
 * every change. Where they cannot vouch for that (a PCI bus event, a path it does not know, a
 * function never read, a node no VFIO function accounts for, a changed VFIO model, a directory just
 * watched), the scan is full; start-up and the periodic resync always are.
 */
export class DeviceScanner extends IncrementalObserver<ScanInput, Inventory> {
  constructor() {
    super(({ topology, model, exists }, _sysfs, input) => buildInventory({ ...input, topology, model, exists }));
  }
}
