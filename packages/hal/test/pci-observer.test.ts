// The event path of discovery: a PciObserver pass made from change events alone must equal a full one.

import { bindToVfio } from '@gpucc/testbed/fixtures';
import { type ChangeOptions, EventMarks, randomChange, seeded, simHost } from '@gpucc/testbed/pci-changes';
import { describe, expect, it } from 'vitest';
import {
  detectVfioModel,
  discoverPci,
  type HostRoot,
  hostDeviceNodesOf,
  isBridge,
  isNvidia,
  localFs,
  PCI_DEVICES_DIR,
  PCI_DRIVERS_DIR,
  type PciAddress,
  type PciEvent,
  PciObserver,
  pciEventOf,
  VFIO_DEVICES_DIR,
  VFIO_DIR,
} from '../src/index.js';

/** Every NVIDIA function with an IOMMU group on vfio-pci, as the operands find a node bound by vfio-manager. */
async function bindNvidia(sysfs: HostRoot, only?: (address: PciAddress) => boolean): Promise<void> {
  for (const d of discoverPci(sysfs).devices) {
    if (isNvidia(d) && !isBridge(d) && d.iommuGroup !== undefined && (only?.(d.address) ?? true)) {
      await bindToVfio(sysfs, d.address);
    }
  }
}

const groupOf = (sysfs: HostRoot, address: string) =>
  sysfs.readlink(`${PCI_DEVICES_DIR}/${address}/iommu_group`)!.split('/').at(-1)!;

/**
 * What the operands watch, by feed: `drivers` the VFIO nodes and vfio-pci's directory (kata-manager);
 * `nodes` the VFIO nodes alone (a real host, whose sysfs sends no events); `bus` the VFIO nodes and
 * the PCI bus (the device plugin).
 */
type Feed = 'drivers' | 'nodes' | 'bus';
const FEEDS: Record<Feed, { dirs: string[]; changes: ChangeOptions }> = {
  drivers: { dirs: [VFIO_DIR, VFIO_DEVICES_DIR, `${PCI_DRIVERS_DIR}/vfio-pci`], changes: { hotRemove: true } },
  // Without a driver event, an unbind whose node was removed by hand changes nothing a watch sees.
  nodes: { dirs: [VFIO_DIR, VFIO_DEVICES_DIR], changes: { visibleUnbinds: true } },
  bus: {
    dirs: [VFIO_DIR, VFIO_DEVICES_DIR, PCI_DEVICES_DIR],
    changes: { visibleUnbinds: true, hotRemove: true, rescan: true },
  },
};

/**
 * Watches on the feed's directories feeding the observer; `arm` watches a directory that appeared
 * since (dev/vfio/devices comes with the first cdev), and then the next pass is full: what happened
 * in it before its watch is unknown.
 */
function watching(sysfs: HostRoot, observer: PciObserver, dirs: string[]) {
  const closers = new Map<string, () => void>();
  const marks = new EventMarks(sysfs);
  const arm = () => {
    for (const dir of dirs) {
      if (closers.has(dir) || !sysfs.exists(dir)) continue;
      const close = sysfs.watchDir(dir, (name) => {
        marks.saw(name);
        observer.note(pciEventOf(dir, name));
      });
      closers.set(dir, close);
      observer.invalidate();
    }
  };
  arm();
  return {
    arm,
    settle: () => marks.settle(),
    close: () => {
      for (const close of closers.values()) close();
    },
  };
}

/** The observation equals a full discovery, and `exists` is true to the host for every node of every function. */
function expectSameAsFullPass(observation: ReturnType<PciObserver['observe']>, sysfs: HostRoot): void {
  expect(observation.topology).toEqual(discoverPci(sysfs));
  expect(observation.model).toEqual(detectVfioModel(sysfs));
  const nodes = observation.topology.devices.flatMap((d) => hostDeviceNodesOf(d, observation.model.model));
  expect(nodes.map((node) => [node, observation.exists(node)])).toEqual(
    nodes.map((node) => [node, sysfs.exists(node)]),
  );
}

describe('PciObserver: the event path equals a full pass', () => {
  const two = { gpus: 6, functionsPerCard: 2 };
  const one = { gpus: 6, functionsPerCard: 1 };
  // The `nodes` and `bus` feeds see no driver event: they run on nodes whose every bind and unbind
  // adds or removes a node of its own (a cdev on iommufd hosts; a group node where groups have one
  // function).
  it.each([
    { profile: 'scale', iommufd: false, seed: 1, options: two, feed: 'drivers' as Feed },
    { profile: 'scale', iommufd: false, seed: 2, options: two, feed: 'drivers' as Feed },
    { profile: 'scale', iommufd: true, seed: 3, options: two, feed: 'drivers' as Feed },
    { profile: 'scale', iommufd: true, seed: 4, options: two, feed: 'drivers' as Feed },
    { profile: 'workstation-mixed', iommufd: false, seed: 5, options: {}, feed: 'drivers' as Feed },
    { profile: 'hgx-h100-8', iommufd: false, seed: 6, options: {}, feed: 'drivers' as Feed },
    { profile: 'grace-gh200-1', iommufd: true, seed: 7, options: {}, feed: 'drivers' as Feed },
    { profile: 'iommufd-h200-2', iommufd: true, seed: 8, options: {}, feed: 'drivers' as Feed },
    { profile: 'scale', iommufd: true, seed: 9, options: two, feed: 'nodes' as Feed },
    { profile: 'workstation-mixed', iommufd: true, seed: 10, options: {}, feed: 'nodes' as Feed },
    { profile: 'scale', iommufd: false, seed: 11, options: one, feed: 'nodes' as Feed },
    { profile: 'hgx-h100-8', iommufd: false, seed: 12, options: {}, feed: 'nodes' as Feed },
    { profile: 'scale', iommufd: false, seed: 13, options: one, feed: 'bus' as Feed },
    { profile: 'hgx-h100-8', iommufd: false, seed: 14, options: {}, feed: 'bus' as Feed },
    { profile: 'scale', iommufd: true, seed: 15, options: { gpus: 4, functionsPerCard: 2 }, feed: 'bus' as Feed },
    { profile: 'workstation-mixed', iommufd: true, seed: 16, options: {}, feed: 'bus' as Feed },
    { profile: 'iommufd-h200-2', iommufd: true, seed: 17, options: {}, feed: 'bus' as Feed },
  ])(
    'after random node removals, restores, binds, unbinds, hot-removals and rescans: $profile, iommufd $iommufd, seed $seed, $feed',
    async ({ profile, iommufd, seed, options, feed }) => {
      const { sysfs } = simHost(profile, iommufd, options);
      await bindNvidia(sysfs);
      const pick = seeded(seed);
      const observer = new PciObserver();
      const watches = watching(sysfs, observer, FEEDS[feed].dirs);
      observer.observe(sysfs, 'full');
      const removed: string[] = [];
      const passes = { full: 0, event: 0 };
      const history: string[] = [];
      try {
        for (let step = 0; step < 40; step++) {
          // One to three changes between two passes, as events coalesce into one.
          for (let n = 1 + pick(3); n > 0; n--) {
            history.push(await randomChange(sysfs, pick, removed, FEEDS[feed].changes));
          }
          await watches.settle();
          watches.arm();
          const observation = observer.observe(sysfs, 'events');
          try {
            expectSameAsFullPass(observation, sysfs);
          } catch (error) {
            throw new Error(`after ${history.join('; ')}: ${(error as Error).message}`);
          }
          expect(observation.pass).toBe(observer.lastPass);
          passes[observation.pass]++;
        }
      } finally {
        watches.close();
      }
      // Most steps took the event path; the rest fell back to a full pass where it could not vouch.
      expect(passes.event).toBeGreaterThan(passes.full);
    },
  );

  it('reads only the function that changed: a bind costs a few reads, not the whole bus', async () => {
    const { sysfs } = simHost('scale', false, { gpus: 64, functionsPerCard: 1 });
    await bindNvidia(sysfs, (address) => address !== '0000:01:00.0');
    const observer = new PciObserver();
    const first = sysfs.withRecorder();
    const before = observer.observe(first, 'full');
    expect(before.pass).toBe('full');
    await bindToVfio(sysfs, '0000:01:00.0');
    observer.note({ type: 'function', address: '0000:01:00.0' as PciAddress });
    observer.note({ type: 'node', path: `${VFIO_DIR}/${groupOf(sysfs, '0000:01:00.0')}` });
    const counted = sysfs.withRecorder();
    const after = observer.observe(counted, 'events');
    expect(after.pass).toBe('event');
    expectSameAsFullPass(after, sysfs);
    expect(first.recorder.reads).toBeGreaterThan(64 * 5);
    expect(counted.recorder.reads).toBeLessThan(20);
  });

  it('on a host whose sysfs sends no events, a function hot-added and then bound is found by a full pass', async () => {
    const { sysfs } = simHost('scale', false, { gpus: 4, functionsPerCard: 1 });
    await bindNvidia(sysfs);
    const group = groupOf(sysfs, '0000:02:00.0');
    await sysfs.write(`${PCI_DEVICES_DIR}/0000:02:00.0/remove`, '1');
    const observer = new PciObserver();
    expect(observer.observe(sysfs, 'full').topology.byAddress.has('0000:02:00.0' as PciAddress)).toBe(false);
    await sysfs.write('sys/bus/pci/rescan', '1'); // back on the bus, on its host driver: no event
    await bindToVfio(sysfs, '0000:02:00.0');
    observer.note({ type: 'node', path: `${VFIO_DIR}/${group}` }); // all devtmpfs says
    const observation = observer.observe(sysfs, 'events');
    expect(observation.pass).toBe('full');
    expectSameAsFullPass(observation, sysfs);
    expect(observation.topology.byAddress.get('0000:02:00.0' as PciAddress)?.driver).toBe('vfio-pci');
  });

  it('a pass asked full, the first, and those after an unknown event or invalidate are full; unrelated events read nothing', async () => {
    const { sysfs } = simHost('hgx-h100-8', false);
    await bindNvidia(sysfs);
    const observer = new PciObserver();
    expect(observer.lastPass).toBeUndefined();
    const first = observer.observe(sysfs, 'events'); // nothing to start from
    expect(first.pass).toBe('full');
    const second = observer.observe(sysfs, 'full');
    expect(second.pass).toBe('full');

    observer.note({ type: 'unrelated' });
    expect(observer.pending).toBe(1);
    const counted = sysfs.withRecorder();
    const again = observer.observe(counted, 'events');
    expect(again.pass).toBe('event');
    expect(observer.pending).toBe(0);
    expect(counted.recorder.reads).toBe(0);
    expect(again.topology).toBe(second.topology);
    expectSameAsFullPass(again, sysfs);
    // With nothing noted, `events` gives the last answer as it is.
    expect(observer.observe(counted, 'events')).toMatchObject({ pass: 'event', topology: again.topology });

    observer.note({ type: 'node', path: 'dev/vfio/vfio' });
    observer.note({ type: 'unknown' });
    expect(observer.observe(sysfs, 'events').pass).toBe('full');

    observer.note({ type: 'node', path: 'dev/vfio/vfio' });
    observer.invalidate();
    expect(observer.observe(sysfs, 'events').pass).toBe('full');

    observer.note({ type: 'node', path: 'dev/vfio/vfio' });
    expect(observer.observe(sysfs, 'full').pass).toBe('full');
    expect(observer.lastPass).toBe('full');
  });

  it('the nodes of a function read again are probed again, even those no event named', async () => {
    const { sysfs } = simHost('scale', false, { gpus: 2, functionsPerCard: 1 });
    const observer = new PciObserver();
    const before = observer.observe(sysfs, 'full');
    const gpu = before.topology.byAddress.get('0000:01:00.0' as PciAddress)!;
    const groupNode = `${VFIO_DIR}/${gpu.iommuGroup}`;
    expect(hostDeviceNodesOf(gpu, before.model.model)).toContain(groupNode);
    expect(before.exists(groupNode)).toBe(false); // probed while unbound
    await bindToVfio(sysfs, gpu.address);
    observer.note({ type: 'function', address: gpu.address }); // the driver event alone
    const after = observer.observe(sysfs, 'events');
    expect(after.pass).toBe('event');
    expect(after.exists(groupNode)).toBe(true);
    expectSameAsFullPass(after, sysfs);
  });

  it('a node gone by hand is probed again, alone', async () => {
    const { root, sysfs } = simHost('hgx-h100-8', false);
    await bindNvidia(sysfs);
    const observer = new PciObserver();
    const gpu = discoverPci(sysfs).devices.find((d) => isNvidia(d) && d.driver === 'vfio-pci')!;
    const node = `${VFIO_DIR}/${gpu.iommuGroup}`;
    expect(observer.observe(sysfs, 'full').exists(node)).toBe(true);
    localFs.removeSync(`${root}/${node}`);
    observer.note(pciEventOf(VFIO_DIR, String(gpu.iommuGroup)));
    const observation = observer.observe(sysfs, 'events');
    expect(observation.pass).toBe('event');
    expect(observation.exists(node)).toBe(false);
    expectSameAsFullPass(observation, sysfs);
  });
});

describe('pciEventOf', () => {
  it.each([
    [VFIO_DIR, '12', { type: 'node', path: 'dev/vfio/12' }],
    [VFIO_DEVICES_DIR, 'vfio3', { type: 'node', path: 'dev/vfio/devices/vfio3' }],
    [VFIO_DIR, '.12.tmp', { type: 'unrelated' }],
    [VFIO_DIR, null, { type: 'unknown' }],
    [`${PCI_DRIVERS_DIR}/vfio-pci`, '0000:01:00.0', { type: 'function', address: '0000:01:00.0' }],
    [`${PCI_DRIVERS_DIR}/vfio-pci`, 'bind', { type: 'unknown' }],
    [PCI_DRIVERS_DIR, 'nvgrace-gpu-vfio-pci', { type: 'unknown' }],
    [PCI_DEVICES_DIR, '0000:01:00.0', { type: 'unknown' }],
  ] as Array<[string, string | null, PciEvent]>)('%s / %s', (dir, name, event) => {
    expect(pciEventOf(dir, name)).toEqual(event);
  });
});

describe('hostDeviceNodesOf', () => {
  const cdev = { name: 'vfio3', index: 3, major: 237, minor: 3 };
  it('gives the nodes a function can be published with: its cdev where it has one, and its group nodes', () => {
    expect(hostDeviceNodesOf({ iommuGroup: 12, vfioCdev: cdev }, 'legacy')).toEqual([
      'dev/vfio/devices/vfio3',
      'dev/vfio/vfio',
      'dev/vfio/12',
    ]);
    expect(hostDeviceNodesOf({ iommuGroup: 12 }, 'noiommu')).toEqual(['dev/vfio/vfio', 'dev/vfio/noiommu-12']);
    expect(hostDeviceNodesOf({ iommuGroup: 12, vfioCdev: cdev }, 'iommufd')).toEqual([
      'dev/vfio/devices/vfio3',
      'dev/vfio/vfio',
      'dev/vfio/12',
    ]);
    // iommufd without CONFIG_VFIO_DEVICE_CDEV: no cdev, so the group is the function's.
    expect(hostDeviceNodesOf({ iommuGroup: 12 }, 'iommufd')).toEqual(['dev/vfio/vfio', 'dev/vfio/12']);
    expect(hostDeviceNodesOf({}, 'legacy')).toEqual([]);
  });
});
