// The event path of `run`: an observation made from change events alone must equal a full pass. The
// hal's PciObserver is tested on its own (packages/hal/test/pci-observer.test.ts); these are the
// same random changes end to end, through run's own watches, the observer and the device selection.
import path from 'node:path';
import { type HostRoot, localFs, type PciAddress, type PciEvent } from '@gpucc/hal';
import { bindAll, bindToVfio, silentLogger } from '@gpucc/testbed/fixtures';
import { EventMarks, randomChange, seeded, until } from '@gpucc/testbed/pci-changes';
import { boundNode, simNode } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import { selectDevices } from '../src/devices.js';
import { DeviceObserver, observeDevices } from '../src/observe.js';
import { reconcileOnce } from '../src/reconcile.js';
import { watchForChanges } from '../src/watch.js';

const CDI = 'var/run/cdi';
const OPTIONS = { perModelNames: false };

/**
 * `run`'s own watches feeding the observer (through `accept`). `settle` waits until every event of
 * the changes made so far has arrived (a marker file in dev/vfio, seen in the trigger's reason).
 */
function watching(sysfs: HostRoot, observer: DeviceObserver, accept: (change: PciEvent) => boolean = () => true) {
  const marks = new EventMarks(sysfs);
  const watches = watchForChanges(
    sysfs,
    CDI,
    (reason) => marks.saw(/\/(\.settle-\d+) changed$/.exec(reason)?.[1] ?? null),
    () => false,
    {
      note: (change) => {
        if (accept(change)) observer.note(change);
      },
    },
  );
  return {
    settle: () => marks.settle(),
    refresh: () => watches.refresh(),
    close: () => watches.close(),
  };
}

function expectSameAsFullPass(observer: DeviceObserver, sysfs: HostRoot): void {
  const fast = observer.observe(sysfs, OPTIONS);
  const full = observeDevices(sysfs, OPTIONS);
  expect(fast).toEqual(full);
  expect(selectDevices(fast, {})).toEqual(selectDevices(full, {}));
}

describe('DeviceObserver: the event path equals a full pass', () => {
  it.each([
    { profile: 'scale', iommufd: false, seed: 1, options: { gpus: 6, functionsPerCard: 2 } },
    { profile: 'grace-gh200-1', iommufd: true, seed: 7, options: {} },
    // A real host: sysfs sends no events, only devtmpfs does. Every bind and unbind still adds or
    // removes a node where each function has its own (a cdev on iommufd hosts; a group node where
    // groups have one function), so the nodes alone name every change.
    { profile: 'workstation-mixed', iommufd: true, seed: 10, options: {}, nodesOnly: true },
    { profile: 'hgx-h100-8', iommufd: false, seed: 12, options: {}, nodesOnly: true },
  ])(
    'after random node removals, restores, binds, unbinds and hot-removals: $profile, iommufd $iommufd, seed $seed',
    async ({ profile, iommufd, seed, options, nodesOnly }) => {
      const { sysfs } = simNode(profile, { iommufd, ...options });
      await bindAll(sysfs, { nvswitches: true, expectOk: false });
      const pick = seeded(seed);
      const observer = new DeviceObserver();
      const watches = watching(sysfs, observer, (change) => !nodesOnly || change.type !== 'function');
      observer.observe(sysfs, OPTIONS);
      watches.refresh();
      const removed: string[] = [];
      const passes = { full: 0, event: 0 };
      const history: string[] = [];
      const changes = nodesOnly ? { visibleUnbinds: true } : { hotRemove: true };
      try {
        for (let step = 0; step < 40; step++) {
          // One to three changes between two reconciles, as events coalesce into one.
          for (let n = 1 + pick(3); n > 0; n--) history.push(await randomChange(sysfs, pick, removed, changes));
          await watches.settle();
          try {
            expectSameAsFullPass(observer, sysfs);
          } catch (error) {
            throw new Error(`after ${history.join('; ')}: ${(error as Error).message}`);
          }
          watches.refresh(); // as run does after each reconcile
          passes[observer.lastPass!]++;
        }
      } finally {
        watches.close();
      }
      // Most steps took the event path; the rest fell back to a full pass where it could not vouch.
      expect(passes.event).toBeGreaterThan(passes.full);
    },
  );

  it('reads only the function that changed: a bind costs a few reads, not the whole bus', async () => {
    const { sysfs } = await boundNode('scale', { gpus: 64, functionsPerCard: 1, nvswitches: false });
    await sysfs.write('sys/bus/pci/drivers/vfio-pci/unbind', '0000:01:00.0');
    const observer = new DeviceObserver();
    const watches = watching(sysfs, observer);
    const first = sysfs.withRecorder();
    observer.observe(first, OPTIONS);
    await bindToVfio(sysfs, '0000:01:00.0');
    await watches.settle();
    watches.close();
    const counted = sysfs.withRecorder();
    const observation = observer.observe(counted, OPTIONS);
    expect(observer.lastPass).toBe('event');
    expect(selectDevices(observation, {}).devices).toHaveLength(64);
    expect(first.recorder.reads).toBeGreaterThan(64 * 5);
    expect(counted.recorder.reads).toBeLessThan(20);
  });

  it('a reconcile after no event, an unknown change or a failure is a full pass; a CDI change alone reads nothing', async () => {
    const { sysfs } = await boundNode('hgx-h100-8', { nvswitches: false });
    const observer = new DeviceObserver();
    const first = observer.observe(sysfs, OPTIONS);
    expect(observer.lastPass).toBe('full');
    observer.observe(sysfs, OPTIONS); // the periodic resync: no event noted since the last pass
    expect(observer.lastPass).toBe('full');

    observer.note({ type: 'unrelated' });
    const counted = sysfs.withRecorder();
    const again = observer.observe(counted, OPTIONS);
    expect(observer.lastPass).toBe('event');
    expect(counted.recorder.reads).toBe(0);
    expect(again).toEqual(first);

    observer.note({ type: 'node', path: 'dev/vfio/vfio' });
    observer.note({ type: 'unknown' });
    observer.observe(sysfs, OPTIONS);
    expect(observer.lastPass).toBe('full');

    observer.note({ type: 'node', path: 'dev/vfio/vfio' });
    observer.invalidate();
    observer.observe(sysfs, OPTIONS);
    expect(observer.lastPass).toBe('full');
  });
});

describe('run: the watches feed the observer', () => {
  it('a bind, a node gone by hand and a hot-removal each reach the spec; the PCI change through a full pass', async () => {
    const { root, sysfs } = await boundNode('scale', { gpus: 8, functionsPerCard: 1, nvswitches: false });
    await sysfs.write('sys/bus/pci/drivers/vfio-pci/unbind', '0000:01:00.0');
    const observer = new DeviceObserver();
    const notes: PciEvent[] = [];
    let triggers = 0;
    const options = { aliases: {}, cdiDir: `/${CDI}`, observer };
    const watches = watchForChanges(
      sysfs,
      CDI,
      () => triggers++,
      () => false,
      {
        note: (change) => {
          notes.push(change);
          observer.note(change);
        },
      },
    );
    const names = () => {
      const file = path.join(root, CDI, 'nvidia.com-pgpu.yaml');
      return localFs.exists(file) ? [...localFs.readText(file).matchAll(/name: "(\d+)"/g)].map((m) => m[1]) : [];
    };
    const group = (address: string) => sysfs.readlink(`sys/bus/pci/devices/${address}/iommu_group`)!.split('/').at(-1)!;
    try {
      const start = await reconcileOnce(sysfs, options, silentLogger());
      watches.refresh();
      expect(start.details).toMatchObject({ pass: 'full', devices: 7 });
      const seen = () => notes.length;

      // A bind: the function's driver link and its group node, one event each.
      let mark = seen();
      await bindToVfio(sysfs, '0000:01:00.0');
      const g1 = group('0000:01:00.0');
      await until(
        () =>
          notes.slice(mark).some((n) => n.type === 'function' && n.address === ('0000:01:00.0' as PciAddress)) &&
          notes.slice(mark).some((n) => n.type === 'node' && n.path === `dev/vfio/${g1}`),
      );
      const bound = await reconcileOnce(sysfs, options, silentLogger());
      watches.refresh();
      expect(bound.details).toMatchObject({ pass: 'event', devices: 8 });
      expect(names()).toContain(g1);

      // A device node removed by hand: the device waits for it, without a read of any device.
      const g2 = group('0000:02:00.0');
      mark = seen();
      localFs.removeSync(path.join(root, 'dev/vfio', g2));
      await until(() => notes.slice(mark).some((n) => n.type === 'node' && n.path === `dev/vfio/${g2}`));
      const counted = sysfs.withRecorder();
      const gone = await reconcileOnce(counted, options, silentLogger());
      watches.refresh();
      expect(gone.details).toMatchObject({ pass: 'event', devices: 7, skipped: 1 });
      expect(names()).not.toContain(g2);
      expect(counted.recorder.reads).toBeLessThan(40); // the CDI dir and spec, the model: no PCI function

      // A VFIO-bound function hot-removed: its driver event names a function that cannot be read now.
      const g3 = group('0000:03:00.0');
      mark = seen();
      await sysfs.write('sys/bus/pci/devices/0000:03:00.0/remove', '1');
      await until(() => notes.slice(mark).some((n) => n.type === 'function'));
      const removed = await reconcileOnce(sysfs, options, silentLogger());
      watches.refresh();
      expect(removed.details).toMatchObject({ pass: 'full', devices: 6 });
      expect(names()).not.toContain(g3);

      // Hot-added again (a bus rescan: it comes back on its host driver), then bound to vfio-pci:
      // a function the last pass never read, so a full pass, and it is published again.
      await sysfs.write('sys/bus/pci/rescan', '1');
      mark = seen();
      await bindToVfio(sysfs, '0000:03:00.0');
      await until(() => notes.slice(mark).some((n) => n.type === 'function'));
      const added = await reconcileOnce(sysfs, options, silentLogger());
      expect(added.details).toMatchObject({ pass: 'full', devices: 7 });
      expect(names()).toContain(g3);
      expect(triggers).toBeGreaterThan(0);
    } finally {
      watches.close();
    }
  });

  it('a failed reconcile makes the next one a full pass', async () => {
    const { root, sysfs } = await boundNode('hgx-h100-8', { nvswitches: false });
    const observer = new DeviceObserver();
    const options = { aliases: {}, cdiDir: `/${CDI}`, observer };
    localFs.makeDir(path.join(root, CDI));
    localFs.writeFileSync(path.join(root, CDI, 'nvidia.com-pgpu.yaml'), 'not ours\n'); // another writer's file
    const failed = await reconcileOnce(sysfs, options, silentLogger());
    expect(failed.ok).toBe(false);
    observer.note({ type: 'node', path: 'dev/vfio/vfio' });
    const retry = await reconcileOnce(sysfs, options, silentLogger());
    expect(retry.details).toMatchObject({ pass: 'full' });
  });
});
