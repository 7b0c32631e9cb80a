// Random host changes on a simulated node, and the means to wait for their events: what the property
// tests of the event path share (the hal's PciObserver here, the operands' observers in their packages).
import path from 'node:path';
import { openSimulatedSysfs } from '../../sim/src/kernel/index.js';
import { layoutNode } from '../../sim/src/node/layout.js';
import { findProfile, type ProfileOptions } from '../../sim/src/profiles/profiles.js';
import { installFakeTools } from '../../sim/src/tools/index.js';
import { tempDir } from '../../sim/test/helpers.js';
import {
  bindDevice,
  discoverPci,
  hostFs,
  isBridge,
  isVfioDriver,
  type PciDevice,
  parsePciAddress,
  type Sysfs,
  setDriverOverride,
  unbindDevice,
  VFIO_DEVICES_DIR,
  VFIO_DIR,
} from '../src/index.js';

/** A simulated node of any profile laid out as a legacy or an iommufd host, writes through the kernel simulator. */
export function simHost(
  profile: string,
  iommufd: boolean,
  options: ProfileOptions = {},
): { root: string; sysfs: Sysfs } {
  const root = path.join(tempDir('gpucc-pci-'), 'node');
  const spec = findProfile(profile).build(options);
  spec.iommufd = iommufd;
  layoutNode(root, spec);
  installFakeTools(root);
  return { root, sysfs: openSimulatedSysfs(root) };
}

/** mulberry32: a seeded generator, so that a failing sequence replays with its seed. */
export function seeded(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

/** Resolves once `test` holds, checking every 2 ms. */
export async function until(test: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** Moves one function to vfio-pci with the hal's primitives (three writes, no waiting for nodes). */
export async function bindToVfio(sysfs: Sysfs, address: string): Promise<void> {
  const bdf = parsePciAddress(address);
  await setDriverOverride(sysfs, bdf, 'vfio-pci');
  await unbindDevice(sysfs, bdf);
  await bindDevice(sysfs, bdf, 'vfio-pci');
}

/**
 * Waits until every event of the changes made so far has arrived: `settle` creates a marker file in
 * `dev/vfio` and waits until a watch on it reports the marker (`saw`), which inotify delivers after
 * every earlier event. The marker is a dot file: nothing to read for it.
 */
export class EventMarks {
  private readonly seen = new Set<string>();
  private count = 0;

  constructor(private readonly sysfs: Sysfs) {}

  /** Give it the name of every entry a watch on `dev/vfio` reports. */
  saw(name: string | null): void {
    if (name?.startsWith('.settle-')) this.seen.add(name);
  }

  async settle(): Promise<void> {
    const name = `.settle-${++this.count}`;
    const file = path.join(this.sysfs.root, VFIO_DIR, name);
    hostFs.writeFileSync(file, '');
    await until(() => this.seen.has(name));
    hostFs.removeSync(file);
  }
}

export interface ChangeOptions {
  /**
   * Unbind only functions whose own node (cdev, or group node) is there: for watches that see nodes
   * and not drivers, an unbind whose node was removed by hand changes nothing they can see.
   */
  visibleUnbinds?: boolean;
  /** Hot-remove VFIO-bound functions (where more than two are). */
  hotRemove?: boolean;
  /** Rescan the bus (what a removed function comes back from, on its host driver). */
  rescan?: boolean;
}

/**
 * One random change a watch can see: a device node removed or put back by hand, a function bound to
 * vfio-pci or unbound from it by the kernel simulator, a VFIO-bound function hot-removed, a bus
 * rescan. `removed` collects the nodes removed by hand, so that they can be put back. Returns what
 * it did, in words.
 */
export async function randomChange(
  sysfs: Sysfs,
  pick: (n: number) => number,
  removed: string[],
  options: ChangeOptions = {},
): Promise<string> {
  const functions = discoverPci(sysfs).devices.filter((d) => !isBridge(d));
  const ownNode = (d: PciDevice) =>
    d.vfioCdev ? `${VFIO_DEVICES_DIR}/${d.vfioCdev.name}` : `${VFIO_DIR}/${d.iommuGroup ?? 'none'}`;
  const onVfio = functions.filter(
    (d) => isVfioDriver(d.driver) && (!options.visibleUnbinds || sysfs.exists(ownNode(d))),
  );
  // VFIO binds only functions in an IOMMU group.
  const offVfio = functions.filter((d) => !isVfioDriver(d.driver) && d.iommuGroup !== undefined).map((d) => d.address);
  const nodes = [VFIO_DIR, VFIO_DEVICES_DIR].flatMap((dir) =>
    sysfs
      .readdir(dir)
      .filter((name) => name !== 'devices')
      .map((name) => `${dir}/${name}`),
  );
  const back = removed.filter((n) => !sysfs.exists(n));
  const kinds = [
    ...(nodes.length ? ['remove-node', 'remove-node'] : []),
    ...(back.length ? ['restore-node', 'restore-node'] : []),
    ...(onVfio.length ? ['unbind', 'unbind'] : []),
    ...(offVfio.length ? ['bind', 'bind'] : []),
    ...(options.hotRemove && onVfio.length > 2 ? ['hot-remove'] : []),
    ...(options.rescan ? ['rescan'] : []),
  ];
  const kind = kinds[pick(kinds.length)]!;
  const one = <T>(xs: T[]) => xs[pick(xs.length)]!;
  switch (kind) {
    case 'remove-node': {
      const gone = one(nodes);
      hostFs.removeSync(path.join(sysfs.root, gone));
      removed.push(gone);
      return `${kind} ${gone}`;
    }
    case 'restore-node': {
      const node = one(back);
      hostFs.writeFileSync(path.join(sysfs.root, node), '', 0o600);
      return `${kind} ${node}`;
    }
    case 'unbind': {
      const { address, driver } = one(onVfio);
      await sysfs.write(`sys/bus/pci/drivers/${driver}/unbind`, address);
      return `${kind} ${address}`;
    }
    case 'bind': {
      const address = one(offVfio);
      await bindToVfio(sysfs, address);
      return `${kind} ${address}`;
    }
    case 'hot-remove': {
      const { address } = one(onVfio);
      await sysfs.write(`sys/bus/pci/devices/${address}/remove`, '1');
      return `${kind} ${address}`;
    }
    default:
      await sysfs.write('sys/bus/pci/rescan', '1');
      return kind;
  }
}
