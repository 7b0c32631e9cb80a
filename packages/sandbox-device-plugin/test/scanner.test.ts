// The plugin's event path: a scan made from change events alone must equal a full scan.
import path from 'node:path';
import { discoverPci, hostFs, isBridge, isVfioDriver, loadPciIds, type PciDevice, type Sysfs } from '@gpucc/hal';
import { describe, expect, it } from 'vitest';
import { openSimulatedSysfs } from '../../sim/src/kernel/index.js';
import { layoutNode } from '../../sim/src/node/layout.js';
import { findProfile, type ProfileOptions } from '../../sim/src/profiles/profiles.js';
import { installFakeTools } from '../../sim/src/tools/index.js';
import { tempDir } from '../../sim/test/helpers.js';
import { type DeviceState, nextDeviceState } from '../src/device-state.js';
import { scanInventory } from '../src/inventory.js';
import { DeviceScanner } from '../src/scanner.js';
import { bindAll, boundNode, startKubelet, startPlugin } from './helpers.js';

const PGPU = 'nvidia.com/pgpu';
const SETTINGS = { nvswitches: true, aliases: {} };
/** Where the plugin watches for devices (plugin-manager's DEVICE_DIRS). */
const DEVICE_DIRS = ['dev/vfio', 'dev/vfio/devices', 'sys/bus/pci/devices'];

/** A simulated node laid out as a legacy or an iommufd host. */
function simHost(profile: string, iommufd: boolean, options: ProfileOptions = {}): { root: string; sysfs: Sysfs } {
  const root = path.join(tempDir('gpucc-sdp-'), 'node');
  const spec = findProfile(profile).build(options);
  spec.iommufd = iommufd;
  layoutNode(root, spec);
  installFakeTools(root);
  return { root, sysfs: openSimulatedSysfs(root) };
}

/** mulberry32: a seeded generator, so that a failing sequence replays with its seed. */
function seeded(seed: number): (n: number) => number {
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
async function until(test: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/**
 * Watches on the plugin's device directories, armed as the plugin arms them (a directory watched
 * anew makes the next scan full), feeding the scanner. `settle` waits until every event of the
 * changes made so far has arrived: inotify delivers a marker file's event after every earlier one.
 */
function watching(sysfs: Sysfs, scanner: DeviceScanner) {
  const closers = new Map<string, () => void>();
  const seen = new Set<string>();
  let marks = 0;
  const arm = () => {
    for (const dir of DEVICE_DIRS) {
      const isDir = sysfs.kindOf(dir) === 'dir';
      const close = closers.get(dir);
      if (close !== undefined && !isDir) {
        close();
        closers.delete(dir);
      } else if (close === undefined && isDir) {
        closers.set(
          dir,
          sysfs.watchDir(dir, (name) => {
            if (name?.startsWith('.settle-')) seen.add(name);
            scanner.noteChange(dir, name);
          }),
        );
        scanner.invalidate();
      }
    }
  };
  arm();
  return {
    arm,
    async settle(): Promise<void> {
      const name = `.settle-${++marks}`;
      const file = path.join(sysfs.root, 'dev/vfio', name);
      hostFs.writeFileSync(file, '');
      await until(() => seen.has(name));
      hostFs.removeSync(file);
    },
    close: () => {
      for (const close of closers.values()) close();
    },
  };
}

/** One random change: a node removed or put back by hand, a bind, an unbind, a hot-removal, a bus rescan. */
async function randomChange(sysfs: Sysfs, pick: (n: number) => number, removed: string[]): Promise<string> {
  const functions = discoverPci(sysfs).devices.filter((d) => !isBridge(d));
  // The plugin sees nodes and the bus, not drivers: an unbind whose node was removed by hand changes
  // nothing it can see (until the resync), so only functions whose own node is there are unbound.
  const ownNode = (d: PciDevice) =>
    d.vfioCdev ? `dev/vfio/devices/${d.vfioCdev.name}` : `dev/vfio/${d.iommuGroup ?? 'none'}`;
  const onVfio = functions.filter((d) => isVfioDriver(d.driver) && sysfs.exists(ownNode(d)));
  const offVfio = functions.filter((d) => !isVfioDriver(d.driver) && d.iommuGroup !== undefined);
  const nodes = ['dev/vfio', 'dev/vfio/devices'].flatMap((dir) =>
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
    ...(onVfio.length > 2 ? ['hot-remove'] : []),
    'rescan',
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
      const { address, driver } = one(offVfio);
      await sysfs.write(`sys/bus/pci/devices/${address}/driver_override`, 'vfio-pci');
      if (driver) await sysfs.write(`sys/bus/pci/drivers/${driver}/unbind`, address);
      await sysfs.write('sys/bus/pci/drivers/vfio-pci/bind', address);
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

describe('DeviceScanner: the event path equals a full scan', () => {
  // Nodes whose every bind and unbind adds or removes a device node, as the plugin sees only nodes
  // and the bus: one function per IOMMU group on legacy hosts; any shape on iommufd hosts (a cdev
  // per function).
  it.each([
    { profile: 'scale', iommufd: false, seed: 11, options: { gpus: 6, functionsPerCard: 1 } },
    { profile: 'hgx-h100-8', iommufd: false, seed: 12, options: {} },
    { profile: 'scale', iommufd: true, seed: 13, options: { gpus: 4, functionsPerCard: 2 } },
    { profile: 'workstation-mixed', iommufd: true, seed: 14, options: {} },
    { profile: 'iommufd-h200-2', iommufd: true, seed: 15, options: {} },
  ])(
    'after random node removals, restores, binds, unbinds, hot-removals and rescans: $profile, iommufd $iommufd, seed $seed',
    async ({ profile, iommufd, seed, options }) => {
      const { root, sysfs } = simHost(profile, iommufd, options);
      await bindAll(sysfs, root, { nvswitches: true }).catch(() => {}); // a group with a NIC stays off VFIO
      const pciIds = loadPciIds(sysfs);
      const pick = seeded(seed);
      const scanner = new DeviceScanner();
      const watches = watching(sysfs, scanner);
      let fastState: DeviceState = nextDeviceState(new Map(), scanner.scan(sysfs, SETTINGS, pciIds, 'full'));
      let fullState = fastState;
      const removed: string[] = [];
      const passes = { full: 0, event: 0 };
      const history: string[] = [];
      try {
        for (let step = 0; step < 40; step++) {
          for (let n = 1 + pick(3); n > 0; n--) history.push(await randomChange(sysfs, pick, removed));
          await watches.settle();
          watches.arm(); // as each scan of the plugin does first
          const fast = scanner.scan(sysfs, SETTINGS, pciIds, 'events');
          const full = scanInventory(sysfs, SETTINGS, pciIds);
          fastState = nextDeviceState(fastState, fast);
          fullState = nextDeviceState(fullState, full);
          try {
            expect(fast).toEqual(full);
            expect(fastState).toEqual(fullState);
          } catch (error) {
            throw new Error(`after ${history.join('; ')}: ${(error as Error).message}`);
          }
          passes[scanner.lastPass!]++;
        }
      } finally {
        watches.close();
      }
      expect(passes.event).toBeGreaterThan(passes.full);
    },
  );

  it('a node gone reads no PCI function; start-up and resync scans are always full', async () => {
    const { sysfs } = await boundNode('scale', { profile: { gpus: 64, functionsPerCard: 1 } });
    const scanner = new DeviceScanner();
    const first = sysfs.withRecorder();
    scanner.scan(first, SETTINGS, undefined, 'full');
    expect(first.recorder.reads).toBeGreaterThan(64 * 5);
    const group = sysfs.readlink('sys/bus/pci/devices/0000:01:00.0/iommu_group')!.split('/').at(-1)!;
    hostFs.removeSync(path.join(sysfs.root, 'dev/vfio', group));
    scanner.noteChange('dev/vfio', group);
    const counted = sysfs.withRecorder();
    const inventory = scanner.scan(counted, SETTINGS, undefined, 'events');
    expect(scanner.lastPass).toBe('event');
    expect(inventory.devices.find((d) => d.id === group)).toMatchObject({
      health: 'Unhealthy',
      reason: `device node /dev/vfio/${group} is missing`,
    });
    expect(counted.recorder.reads).toBeLessThan(20); // the group's one function, and the VFIO model
    expect(inventory).toEqual(scanInventory(sysfs, SETTINGS, undefined));

    scanner.noteChange('dev/vfio', group);
    scanner.scan(sysfs, SETTINGS, undefined, 'full'); // the resync, events or not
    expect(scanner.lastPass).toBe('full');
    scanner.noteChange('sys/bus/pci/devices', '0000:01:00.0'); // a PCI bus event
    scanner.scan(sysfs, SETTINGS, undefined, 'events');
    expect(scanner.lastPass).toBe('full');
    scanner.noteChange('dev/vfio', null); // a watch that cannot say what changed
    scanner.scan(sysfs, SETTINGS, undefined, 'events');
    expect(scanner.lastPass).toBe('full');
    scanner.noteChange('dev/vfio', '.tmp');
    const dotOnly = sysfs.withRecorder();
    scanner.scan(dotOnly, SETTINGS, undefined, 'events');
    expect(scanner.lastPass).toBe('event');
    expect(dotOnly.recorder.reads).toBe(0);
  });

  it('on a host whose sysfs sends no events, a function hot-added and then bound is found by a full scan', async () => {
    const { root, sysfs } = await boundNode('scale', { profile: { gpus: 4, functionsPerCard: 1 } });
    const group = sysfs.readlink('sys/bus/pci/devices/0000:02:00.0/iommu_group')!.split('/').at(-1)!;
    await sysfs.write('sys/bus/pci/devices/0000:02:00.0/remove', '1');
    const scanner = new DeviceScanner();
    expect(scanner.scan(sysfs, SETTINGS, undefined, 'full').devices).toHaveLength(3);
    await sysfs.write('sys/bus/pci/rescan', '1'); // back on the bus, on its host driver: no event
    await bindAll(sysfs, root, { devices: ['0000:02:00.0'] });
    scanner.noteChange('dev/vfio', group); // all devtmpfs says
    const inventory = scanner.scan(sysfs, SETTINGS, undefined, 'events');
    expect(scanner.lastPass).toBe('full');
    expect(inventory.devices.find((d) => d.id === group)?.health).toBe('Healthy');
  });

  it('the running plugin takes the event path: a node gone and back reads no PCI function', async () => {
    const { root, sysfs } = await boundNode('hgx-h100-8');
    const kubelet = await startKubelet(root);
    const counted = sysfs.withRecorder();
    await startPlugin(counted);
    await kubelet.waitFor((s) => s.resources[PGPU]?.allocatable === 8);
    const uevents = () => counted.recorder.readsByAttribute.get('uevent') ?? 0;
    const before = uevents();
    expect(before).toBeGreaterThan(0);
    hostFs.removeSync(path.join(root, 'dev/vfio/31'));
    await kubelet.waitFor((s) => s.resources[PGPU]?.allocatable === 7);
    hostFs.writeFileSync(path.join(root, 'dev/vfio/31'), '', 0o600);
    await kubelet.waitFor((s) => s.resources[PGPU]?.allocatable === 8);
    // Group 31 has one function: each of the two scans read it alone, not the 30 functions of the node.
    expect(uevents() - before).toBeLessThanOrEqual(2);
  });
});
