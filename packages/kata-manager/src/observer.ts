import { loadPciIds, type PciEvent, PciObserver, type PciPass, type Sysfs } from '@gpucc/hal';
import { type DeviceObservation, type ObserveOptions, presentNodesOf } from './observe.js';

/**
 * The observation of `run`, kept between reconciles so that a change event costs what it changed,
 * not what the node holds (the hal's `PciObserver`: a node that appeared or vanished, or a function
 * bound or unbound, is read again alone, with the node existence of everything else as the last pass
 * left it). A reconcile with no event noted since the last one (start, the periodic resync, a retry)
 * and the one after a failed reconcile are full passes: the periodic full pass stays the source of
 * truth. pci.ids is read again by full passes only.
 */
export class DeviceObserver {
  private readonly pci = new PciObserver();
  private pciIds: DeviceObservation['pciIds'];

  /** How the last observation was made; undefined before the first. */
  get lastPass(): PciPass | undefined {
    return this.pci.lastPass;
  }

  note(change: PciEvent): void {
    this.pci.note(change);
  }

  /** The next observation is a full pass (after a failed reconcile). */
  invalidate(): void {
    this.pci.invalidate();
  }

  observe(sysfs: Sysfs, options: ObserveOptions): DeviceObservation {
    const { topology, model, exists, pass } = this.pci.observe(sysfs, this.pci.pending > 0 ? 'events' : 'full');
    const presentNodes = presentNodesOf(topology, model, exists);
    if (pass === 'full') this.pciIds = options.perModelNames ? loadPciIds(sysfs, options.pciIds) : undefined;
    return { topology, model, presentNodes, pciIds: this.pciIds };
  }
}
