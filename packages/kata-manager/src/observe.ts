import {
  detectVfioModel,
  discoverPci,
  type FileKind,
  type HostRoot,
  hostDeviceNodesOf,
  IncrementalObserver,
  isVfioFunction,
  loadPciIds,
  type PciIdsDb,
  type PciIdsSource,
  type PciTopology,
  type VfioHostModel,
} from '@gpucc/hal';

/** Everything the spec builder needs from the host, read in one pass. Plain data. */
export interface DeviceObservation {
  topology: PciTopology;
  model: VfioHostModel;
  /** Host paths (relative to the root) of the device nodes VFIO-bound functions need that exist now. */
  presentNodes: ReadonlySet<string>;
  /** pci.ids (the host's, else the `--pci-ids` file), read only when a per-model name is asked for (an alias set to ""). */
  pciIds: PciIdsDb | undefined;
}

/** One entry of the CDI directory: the spec files a loader would read (`*.yaml`, `*.json`). */
export interface CdiDirEntry {
  /** Base name, e.g. `nvidia.com-pgpu.yaml`. */
  name: string;
  type: FileKind | undefined;
  /** The content of a regular file (symlinks followed inside the root); undefined when unreadable. */
  text?: string;
}

export interface ObserveOptions {
  perModelNames: boolean;
  pciIds?: PciIdsSource;
}

/** The full pass: every PCI function, the VFIO model, every node a VFIO-bound function needs. */
export function observeDevices(sysfs: HostRoot, options: ObserveOptions): DeviceObservation {
  const topology = discoverPci(sysfs);
  const model = detectVfioModel(sysfs);
  return {
    topology,
    model,
    presentNodes: presentNodesOf(topology, model, (relPath) => sysfs.exists(relPath)),
    pciIds: options.perModelNames ? loadPciIds(sysfs, options.pciIds) : undefined,
  };
}

/** The nodes that VFIO-bound functions need and that exist, each probed once. */
export function presentNodesOf(
  topology: PciTopology,
  model: VfioHostModel,
  exists: (relPath: string) => boolean,
): Set<string> {
  const presentNodes = new Set<string>();
  for (const device of topology.devices) {
    if (!isVfioFunction(device)) continue;
    for (const node of hostDeviceNodesOf(device, model.model))
      if (!presentNodes.has(node) && exists(node)) presentNodes.add(node);
  }
  return presentNodes;
}

const SPEC_FILE = /\.(yaml|json)$/;

/**
 * The spec files in the CDI directory (`dir` is a host path). Temp files (`.name.pid.rand.tmp`) and
 * other dot files are skipped, as CDI loaders skip them.
 */
export function observeCdiDir(sysfs: HostRoot, dir: string): CdiDirEntry[] {
  const entries: CdiDirEntry[] = [];
  for (const name of sysfs.readdir(dir)) {
    if (name.startsWith('.') || !SPEC_FILE.test(name)) continue;
    const path = `${dir}/${name}`;
    const type = sysfs.kindOf(path);
    let text: string | undefined;
    try {
      text = type === 'file' || type === 'symlink' ? sysfs.readOptional(path) : undefined;
    } catch {
      text = undefined; // unreadable: treated as a file we know nothing about
    }
    entries.push({ name, type, ...(text === undefined ? {} : { text }) });
  }
  return entries;
}

/**
 * The observation of `run`, kept between reconciles (the hal's `IncrementalObserver`): a node that
 * appeared or vanished, or a function bound or unbound, is read again alone, with the node existence
 * of everything else as the last pass left it. A reconcile with no event noted since the last one
 * (start, the periodic resync, a retry) and the one after a failed reconcile are full passes: the
 * periodic full pass stays the source of truth. pci.ids is read again by full passes only.
 */
export class DeviceObserver extends IncrementalObserver<ObserveOptions, DeviceObservation> {
  constructor() {
    let pciIds: PciIdsDb | undefined;
    super(({ topology, model, exists, pass }, sysfs, options) => {
      if (pass === 'full') pciIds = options.perModelNames ? loadPciIds(sysfs, options.pciIds) : undefined;
      return { topology, model, presentNodes: presentNodesOf(topology, model, exists), pciIds };
    });
  }
}
