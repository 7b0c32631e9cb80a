import {
  detectVfioModel,
  discoverPci,
  hostDeviceNodesFor,
  type PciDevice,
  type PciIdsDb,
  type PciTopology,
  refreshPci,
  type Sysfs,
  type VfioHostModel,
  vfioCdevPath,
} from '@gpucc/hal';
import { buildInventory, type Inventory, type InventorySettings } from './inventory.js';

/** How a scan read the host: the whole bus (`full`), or only what the change events named (`event`). */
export type ScanPass = 'full' | 'event';

const VFIO_DIRS = new Set(['dev/vfio', 'dev/vfio/devices']);

/**
 * Device discovery for the run mode, kept between scans so that a change event costs what it
 * changed, not what the node holds. A device node that appeared or vanished under `dev/vfio` names
 * the functions it concerns (its group's members, or the owner of a cdev): only those are read again
 * (the hal's `refreshPci`), and only the nodes the events named or those functions need are probed
 * again; every other device keeps what the last scan read. The inventory is then built from the
 * whole topology as always, so it is what a full scan would give, provided the events named every
 * change. Where they cannot vouch for that (a PCI bus event, a path it does not know, a function
 * never read, a node no VFIO function accounts for, a changed VFIO model, a directory just
 * watched), the scan is full; start-up and the periodic resync always are.
 */
export class DeviceScanner {
  /** How the last scan read the host; undefined before the first. */
  lastPass: ScanPass | undefined;
  private last: { topology: PciTopology; model: VfioHostModel } | undefined;
  private readonly nodeExists = new Map<string, boolean>();
  private rediscover = true;
  private readonly nodes = new Set<string>();

  /** An entry of a watched directory appeared or vanished (`name` null: the watch could not say which). */
  noteChange(dir: string, name: string | null): void {
    if (name === null || !VFIO_DIRS.has(dir)) this.rediscover = true;
    // No VFIO node starts with a dot: a temp file of whoever makes nodes by rename (the simulator does).
    else if (!name.startsWith('.')) this.nodes.add(`${dir}/${name}`);
  }

  /** The next scan reads everything (a directory is newly watched: what happened in it before is unknown). */
  invalidate(): void {
    this.rediscover = true;
  }

  /** `full`: start-up and resync. `events`: after change events, the event path where it holds. */
  scan(sysfs: Sysfs, settings: InventorySettings, pciIds: PciIdsDb | undefined, mode: 'full' | 'events'): Inventory {
    const exists = (relPath: string) => {
      let known = this.nodeExists.get(relPath);
      if (known === undefined) {
        known = sysfs.exists(relPath);
        this.nodeExists.set(relPath, known);
      }
      return known;
    };
    let host = mode === 'events' && !this.rediscover && this.last ? this.eventPass(sysfs, this.last) : undefined;
    this.lastPass = host ? 'event' : 'full';
    if (host === undefined) {
      this.nodeExists.clear();
      host = { topology: discoverPci(sysfs), model: detectVfioModel(sysfs) };
    }
    this.last = host;
    this.rediscover = false;
    this.nodes.clear();
    return buildInventory({ ...settings, topology: host.topology, model: host.model.model, pciIds, exists });
  }

  private eventPass(
    sysfs: Sysfs,
    last: { topology: PciTopology; model: VfioHostModel },
  ): { topology: PciTopology; model: VfioHostModel } | undefined {
    if (this.nodes.size === 0) return last;
    const model = detectVfioModel(sysfs);
    if (!sameModel(model, last.model)) return undefined;
    const topology = refreshPci(sysfs, last.topology, { nodes: this.nodes, functions: [] });
    if (topology === undefined) return undefined;
    for (const node of this.nodes) this.nodeExists.delete(node);
    // The nodes of every function read again are probed again, not only the ones the events named.
    for (const device of topology.devices) {
      const before = last.topology.byAddress.get(device.address);
      if (device === before || before === undefined) continue;
      for (const node of [...nodesOf(before, model), ...nodesOf(device, model)]) this.nodeExists.delete(node);
    }
    return { topology, model };
  }
}

/** The nodes one function brings in the host's model: its group's nodes, or its cdev. */
function nodesOf(device: PciDevice, model: VfioHostModel): string[] {
  if (model.model === 'iommufd') return device.vfioCdev ? [vfioCdevPath(device.vfioCdev.index)] : [];
  return device.iommuGroup === undefined ? [] : hostDeviceNodesFor(model.model, { group: device.iommuGroup });
}

function sameModel(a: VfioHostModel, b: VfioHostModel): boolean {
  return (
    a.model === b.model &&
    a.iommuEnabled === b.iommuEnabled &&
    a.iommufd === b.iommufd &&
    a.noiommuParameter === b.noiommuParameter
  );
}
