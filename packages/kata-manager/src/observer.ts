import { detectVfioModel, type PciAddress, refreshPci, type Sysfs, type VfioHostModel } from '@gpucc/hal';
import { type DeviceObservation, nodesOf, type ObserveOptions, observeDevices, presentNodesOf } from './observe.js';

/** A change a watch reported, as the observer needs it. */
export type HostChange =
  /** An entry of `dev/vfio` or `dev/vfio/devices` appeared or vanished (host path). */
  | { type: 'node'; path: string }
  /** A function's entry in a VFIO driver's directory came or went: it was bound or unbound. */
  | { type: 'function'; address: PciAddress }
  /** Nothing on the PCI side changed (the CDI directory): the last observation still holds. */
  | { type: 'unrelated' }
  /** Anything else (a driver loaded, a directory that appeared, an event without a name). */
  | { type: 'unknown' };

/** How an observation was made: the whole bus read (`full`), or only what the events named (`event`). */
export type ObservePass = 'full' | 'event';

/**
 * The observation of `run`, kept between reconciles so that a change event costs what it changed,
 * not what the node holds: a node that appeared or vanished, or a function bound or unbound, is read
 * again alone (its IOMMU group's members for a group node), with the node existence of everything
 * else as the last pass left it. The result is what a full pass would return, provided the events
 * named every change; where they cannot vouch for that (an unknown path, a function never read, a
 * node no VFIO function accounts for, a changed VFIO model) the pass is full. A reconcile with no
 * event noted since the last one (start, the periodic resync, a retry) and the one after a failed
 * reconcile are full passes: the periodic full pass stays the source of truth.
 */
export class DeviceObserver {
  /** How the last observation was made; undefined before the first. */
  lastPass: ObservePass | undefined;
  private last: DeviceObservation | undefined;
  private readonly nodeExists = new Map<string, boolean>();
  private changes = 0;
  private rediscover = true;
  private readonly nodes = new Set<string>();
  private readonly functions = new Set<PciAddress>();

  note(change: HostChange): void {
    this.changes++;
    if (change.type === 'node') this.nodes.add(change.path);
    else if (change.type === 'function') this.functions.add(change.address);
    else if (change.type === 'unknown') this.rediscover = true;
  }

  /** The next observation is a full pass (after a failed reconcile). */
  invalidate(): void {
    this.rediscover = true;
  }

  observe(sysfs: Sysfs, options: ObserveOptions): DeviceObservation {
    const exists = (relPath: string) => {
      let known = this.nodeExists.get(relPath);
      if (known === undefined) {
        known = sysfs.exists(relPath);
        this.nodeExists.set(relPath, known);
      }
      return known;
    };
    let observation =
      this.last && !this.rediscover && this.changes > 0 ? this.eventPass(sysfs, this.last, exists) : undefined;
    this.lastPass = observation ? 'event' : 'full';
    if (observation === undefined) {
      this.nodeExists.clear();
      observation = observeDevices(sysfs, options, exists);
    }
    this.last = observation;
    this.changes = 0;
    this.rediscover = false;
    this.nodes.clear();
    this.functions.clear();
    return observation;
  }

  private eventPass(
    sysfs: Sysfs,
    last: DeviceObservation,
    exists: (relPath: string) => boolean,
  ): DeviceObservation | undefined {
    if (this.nodes.size === 0 && this.functions.size === 0) return last;
    const model = detectVfioModel(sysfs);
    if (!sameModel(model, last.model)) return undefined;
    const topology = refreshPci(sysfs, last.topology, { nodes: this.nodes, functions: this.functions });
    if (topology === undefined) return undefined;
    for (const node of this.nodes) this.nodeExists.delete(node);
    // The nodes of every function read again are probed again, not only the ones the events named.
    for (const device of topology.devices) {
      const before = last.topology.byAddress.get(device.address);
      if (device === before || before === undefined) continue;
      for (const node of [...nodesOf(before, model), ...nodesOf(device, model)]) this.nodeExists.delete(node);
    }
    return { topology, model, presentNodes: presentNodesOf(topology, model, exists), pciIds: last.pciIds };
  }
}

function sameModel(a: VfioHostModel, b: VfioHostModel): boolean {
  return (
    a.model === b.model &&
    a.iommuEnabled === b.iommuEnabled &&
    a.iommufd === b.iommufd &&
    a.noiommuParameter === b.noiommuParameter
  );
}
