import { detectVfioModel, type VfioHostModel } from '../devnodes/model.js';
import { hostDeviceNodesFor, VFIO_DEVICES_DIR, VFIO_DIR, type VfioModel, vfioCdevPath } from '../devnodes/paths.js';
import type { HostRoot } from '../fs/index.js';
import { isPciAddress, type PciAddress } from '../types/index.js';
import { PCI_DRIVERS_DIR } from './device.js';
import { discoverPci } from './discover.js';
import { refreshPci } from './refresh.js';
import type { PciDevice, PciTopology } from './types.js';

/** A change a watch on a host directory reported, as discovery needs it. */
export type PciEvent =
  /** An entry of `dev/vfio` or `dev/vfio/devices` appeared or vanished (host path). */
  | { type: 'node'; path: string }
  /** A function's entry in a driver's directory came or went: it was bound or unbound. */
  | { type: 'function'; address: PciAddress }
  /** Nothing on the PCI side changed: the last observation still holds. */
  | { type: 'unrelated' }
  /** Anything else (the bus, a driver loaded, a directory that appeared, an event without a name). */
  | { type: 'unknown' };

/** How an observation was made: the whole bus read (`full`), or only what the events named (`event`). */
export type PciPass = 'full' | 'event';

export interface PciObservation {
  topology: PciTopology;
  model: VfioHostModel;
  /**
   * Whether a host path exists, each path probed once and then answered from a cache that lives
   * until a change can have altered the answer: a node an event named, or a node of a function read
   * again. True to the host for the nodes of the topology's functions (`hostDeviceNodesOf`),
   * provided the events named every change.
   */
  exists: (relPath: string) => boolean;
  pass: PciPass;
}

/**
 * The host paths of the VFIO device nodes one function can bring on this host: its cdev where it has
 * one and its group's nodes, since each device is published with either (naming/device-unit.ts).
 */
export function hostDeviceNodesOf(device: Pick<PciDevice, 'iommuGroup' | 'vfioCdev'>, model: VfioModel): string[] {
  const cdev = model !== 'noiommu' && device.vfioCdev ? [vfioCdevPath(device.vfioCdev.index)] : [];
  const groupModel = model === 'noiommu' ? 'noiommu' : 'legacy';
  return device.iommuGroup === undefined
    ? cdev
    : [...cdev, ...hostDeviceNodesFor(groupModel, { group: device.iommuGroup })];
}

/**
 * What an entry that appeared or vanished in a watched directory means for discovery (`name` null:
 * the watch could not say which). No VFIO node starts with a dot: a dot file there is the temp file
 * of whoever makes nodes by rename (the simulator does).
 */
export function pciEventOf(dir: string, name: string | null): PciEvent {
  if (name === null) return { type: 'unknown' };
  if (dir === VFIO_DIR || dir === VFIO_DEVICES_DIR) {
    return name.startsWith('.') ? { type: 'unrelated' } : { type: 'node', path: `${dir}/${name}` };
  }
  if (dir.startsWith(`${PCI_DRIVERS_DIR}/`) && isPciAddress(name)) return { type: 'function', address: name };
  return { type: 'unknown' };
}

/**
 * PCI discovery kept between passes, so that a change event costs what it changed, not what the node
 * holds: a device node that appeared or vanished, or a function bound or unbound, names the
 * functions it concerns (a group node its group's members, a cdev its owner); only those are read
 * again (`refreshPci`), and only the nodes the events named or those functions bring are probed
 * again; everything else keeps what the last pass read. The answer is what `discoverPci` and
 * `detectVfioModel` would give, provided the events named every change. Where they cannot vouch
 * for that (an unknown event, a path it does not know, a function never read, a node no VFIO
 * function accounts for, a changed VFIO model, `invalidate`), the pass is full; a pass asked to be
 * full, and the first one, always are. The periodic full pass stays the source of truth.
 */
export class PciObserver {
  private pass: PciPass | undefined;
  private last: { topology: PciTopology; model: VfioHostModel } | undefined;
  private readonly nodeExists = new Map<string, boolean>();
  private noted = 0;
  private rediscover = true;
  private readonly nodes = new Set<string>();
  private readonly functions = new Set<PciAddress>();

  /** How the last observation was made; undefined before the first. */
  get lastPass(): PciPass | undefined {
    return this.pass;
  }

  /** How many events were noted since the last observation (an `unrelated` one too). */
  get pending(): number {
    return this.noted;
  }

  note(event: PciEvent): void {
    this.noted++;
    if (event.type === 'node') this.nodes.add(event.path);
    else if (event.type === 'function') this.functions.add(event.address);
    else if (event.type === 'unknown') this.rediscover = true;
  }

  /** The next observation is a full pass (after a failure, or a directory newly watched). */
  invalidate(): void {
    this.rediscover = true;
  }

  /**
   * `full`: read everything. `events`: read again only what the events noted since the last pass
   * name, where that holds (with nothing noted, or only `unrelated` events, that is nothing at all).
   */
  observe(sysfs: HostRoot, mode: 'full' | 'events'): PciObservation {
    let host = mode === 'events' && !this.rediscover && this.last ? this.eventPass(sysfs, this.last) : undefined;
    const pass = host ? 'event' : 'full';
    this.pass = pass;
    if (host === undefined) {
      this.nodeExists.clear();
      host = { topology: discoverPci(sysfs), model: detectVfioModel(sysfs) };
    }
    this.last = host;
    this.noted = 0;
    this.rediscover = false;
    this.nodes.clear();
    this.functions.clear();
    const exists = (relPath: string) => {
      let known = this.nodeExists.get(relPath);
      if (known === undefined) {
        known = sysfs.exists(relPath);
        this.nodeExists.set(relPath, known);
      }
      return known;
    };
    return { ...host, exists, pass };
  }

  private eventPass(
    sysfs: HostRoot,
    last: { topology: PciTopology; model: VfioHostModel },
  ): { topology: PciTopology; model: VfioHostModel } | undefined {
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
      for (const node of [...hostDeviceNodesOf(before, model.model), ...hostDeviceNodesOf(device, model.model)]) {
        this.nodeExists.delete(node);
      }
    }
    return { topology, model };
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

/**
 * A `PciObserver` and what an operand makes of each observation (kata-manager's device observation,
 * the device plugin's inventory), kept between reconciles so that a change event costs what it
 * changed, not what the node holds. `derive` sees the pass (`full` or `event`) so that what is read
 * only by full passes (pci.ids) stays as the last full pass left it.
 */
export class IncrementalObserver<In, Out> {
  private readonly pci = new PciObserver();

  constructor(private readonly derive: (observation: PciObservation, sysfs: HostRoot, input: In) => Out) {}

  /** How the last observation was made; undefined before the first. */
  get lastPass(): PciPass | undefined {
    return this.pci.lastPass;
  }

  note(event: PciEvent): void {
    this.pci.note(event);
  }

  /** An entry of a watched directory appeared or vanished (`name` null: the watch could not say which). */
  noteChange(dir: string, name: string | null): void {
    this.pci.note(pciEventOf(dir, name));
  }

  /** The next observation is a full pass (after a failure, or a directory newly watched). */
  invalidate(): void {
    this.pci.invalidate();
  }

  /**
   * `full`: start-up and resync. `events`: the event path where it holds. By default `events` when
   * events were noted since the last observation, else `full` (start, the periodic resync, a retry).
   */
  observe(sysfs: HostRoot, input: In, mode: 'full' | 'events' = this.pci.pending > 0 ? 'events' : 'full'): Out {
    return this.derive(this.pci.observe(sysfs, mode), sysfs, input);
  }
}
