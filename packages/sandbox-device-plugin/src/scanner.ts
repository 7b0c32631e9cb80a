import { type PciIdsDb, PciObserver, type PciPass, pciEventOf, type Sysfs } from '@gpucc/hal';
import { buildInventory, type Inventory, type InventorySettings } from './inventory.js';

/**
 * Device discovery for the run mode, kept between scans so that a change event costs what it
 * changed, not what the node holds: the hal's `PciObserver` reads again only the functions a device
 * node that appeared or vanished under `dev/vfio` concerns, and probes again only the nodes the
 * events named or those functions need. The inventory is then built from the whole topology as
 * always, so it is what a full scan would give, provided the events named every change. Where they
 * cannot vouch for that (a PCI bus event, a path it does not know, a function never read, a node no
 * VFIO function accounts for, a changed VFIO model, a directory just watched), the scan is full;
 * start-up and the periodic resync always are.
 */
export class DeviceScanner {
  private readonly pci = new PciObserver();

  /** How the last scan read the host; undefined before the first. */
  get lastPass(): PciPass | undefined {
    return this.pci.lastPass;
  }

  /** An entry of a watched directory appeared or vanished (`name` null: the watch could not say which). */
  noteChange(dir: string, name: string | null): void {
    this.pci.note(pciEventOf(dir, name));
  }

  /** The next scan reads everything (a directory is newly watched: what happened in it before is unknown). */
  invalidate(): void {
    this.pci.invalidate();
  }

  /** `full`: start-up and resync. `events`: after change events, the event path where it holds. */
  scan(sysfs: Sysfs, settings: InventorySettings, pciIds: PciIdsDb | undefined, mode: 'full' | 'events'): Inventory {
    const { topology, model, exists } = this.pci.observe(sysfs, mode);
    return buildInventory({ ...settings, topology, model: model.model, pciIds, exists });
  }
}
