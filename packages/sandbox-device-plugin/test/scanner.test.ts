// The plugin's event path: a scan made from change events alone must equal a full scan. The hal's
// PciObserver is tested on its own (packages/hal/test/pci-observer.test.ts); these are the same
// random changes end to end, through the plugin's watches, the scanner and the inventory.
import path from 'node:path';
import { watchDirs } from '@gpucc/daemon';
import { type HostRoot, loadPciIds, localFs, PCI_DEVICES_DIR, VFIO_DEVICES_DIR, VFIO_DIR } from '@gpucc/hal';
import { bindAll } from '@gpucc/testbed/fixtures';
import { EventMarks, randomChange, seeded, simHost } from '@gpucc/testbed/pci-changes';
import { boundNode } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import { type DeviceState, nextDeviceState } from '../src/device-state.js';
import { scanInventory } from '../src/inventory.js';
import { DeviceScanner } from '../src/scanner.js';
import { startKubelet, startPlugin } from './helpers.js';

const PGPU = 'nvidia.com/pgpu';
const SETTINGS = { nvswitches: true, aliases: {} };
/** The plugin sees nodes and the bus, not drivers: an unbind whose node was removed by hand changes nothing it sees. */
const CHANGES = { visibleUnbinds: true, hotRemove: true, rescan: true };

/**
 * Watches on the plugin's device directories, armed as the plugin arms them (re-armed before each
 * scan; a directory watched anew makes the next scan full), feeding the scanner. `settle` waits
 * until every event of the changes made so far has arrived.
 */
function watching(sysfs: HostRoot, scanner: DeviceScanner) {
  const marks = new EventMarks(sysfs);
  const watches = watchDirs(
    sysfs,
    () => [VFIO_DIR, VFIO_DEVICES_DIR, PCI_DEVICES_DIR],
    (dir, name) => {
      marks.saw(name);
      scanner.noteChange(dir, name);
    },
  );
  return {
    arm: () => {
      if (watches.refresh().length > 0) scanner.invalidate();
    },
    settle: () => marks.settle(),
    close: () => watches.close(),
  };
}

describe('DeviceScanner: the event path equals a full scan', () => {
  // Nodes whose every bind and unbind adds or removes a device node, as the plugin sees only nodes
  // and the bus: one function per IOMMU group on legacy hosts; any shape on iommufd hosts (a cdev
  // per function).
  it.each([
    { profile: 'hgx-h100-8', iommufd: false, seed: 12, options: {} },
    { profile: 'scale', iommufd: true, seed: 13, options: { gpus: 4, functionsPerCard: 2 } },
  ])(
    'after random node removals, restores, binds, unbinds, hot-removals and rescans: $profile, iommufd $iommufd, seed $seed',
    async ({ profile, iommufd, seed, options }) => {
      const { sysfs } = simHost(profile, iommufd, options);
      await bindAll(sysfs, { nvswitches: true }).catch(() => {}); // a group with a NIC stays off VFIO
      const pciIds = loadPciIds(sysfs);
      const pick = seeded(seed);
      const scanner = new DeviceScanner();
      const watches = watching(sysfs, scanner);
      let fastState: DeviceState = nextDeviceState(
        new Map(),
        scanner.observe(sysfs, { ...SETTINGS, pciIds: pciIds }, 'full'),
      );
      let fullState = fastState;
      const removed: string[] = [];
      const passes = { full: 0, event: 0 };
      const history: string[] = [];
      try {
        for (let step = 0; step < 40; step++) {
          for (let n = 1 + pick(3); n > 0; n--) history.push(await randomChange(sysfs, pick, removed, CHANGES));
          await watches.settle();
          watches.arm(); // as each scan of the plugin does first
          const fast = scanner.observe(sysfs, { ...SETTINGS, pciIds: pciIds }, 'events');
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
    const { sysfs } = await boundNode('scale', { gpus: 64, functionsPerCard: 1 });
    const scanner = new DeviceScanner();
    const first = sysfs.withRecorder();
    scanner.observe(first, { ...SETTINGS, pciIds: undefined }, 'full');
    expect(first.recorder.reads).toBeGreaterThan(64 * 5);
    const group = sysfs.readlink('sys/bus/pci/devices/0000:01:00.0/iommu_group')!.split('/').at(-1)!;
    localFs.removeSync(path.join(sysfs.root, 'dev/vfio', group));
    scanner.noteChange('dev/vfio', group);
    const counted = sysfs.withRecorder();
    const inventory = scanner.observe(counted, { ...SETTINGS, pciIds: undefined }, 'events');
    expect(scanner.lastPass).toBe('event');
    expect(inventory.devices.find((d) => d.id === group)).toMatchObject({
      health: 'Unhealthy',
      reason: `device node /dev/vfio/${group} is missing`,
    });
    expect(counted.recorder.reads).toBeLessThan(20); // the group's one function, and the VFIO model
    expect(inventory).toEqual(scanInventory(sysfs, SETTINGS, undefined));

    scanner.noteChange('dev/vfio', group);
    scanner.observe(sysfs, { ...SETTINGS, pciIds: undefined }, 'full'); // the resync, events or not
    expect(scanner.lastPass).toBe('full');
    scanner.noteChange('sys/bus/pci/devices', '0000:01:00.0'); // a PCI bus event
    scanner.observe(sysfs, { ...SETTINGS, pciIds: undefined }, 'events');
    expect(scanner.lastPass).toBe('full');
    scanner.noteChange('dev/vfio', null); // a watch that cannot say what changed
    scanner.observe(sysfs, { ...SETTINGS, pciIds: undefined }, 'events');
    expect(scanner.lastPass).toBe('full');
    scanner.noteChange('dev/vfio', '.tmp');
    const dotOnly = sysfs.withRecorder();
    scanner.observe(dotOnly, { ...SETTINGS, pciIds: undefined }, 'events');
    expect(scanner.lastPass).toBe('event');
    expect(dotOnly.recorder.reads).toBe(0);
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
    localFs.removeSync(path.join(root, 'dev/vfio/31'));
    await kubelet.waitFor((s) => s.resources[PGPU]?.allocatable === 7);
    localFs.writeFileSync(path.join(root, 'dev/vfio/31'), '', 0o600);
    await kubelet.waitFor((s) => s.resources[PGPU]?.allocatable === 8);
    // Group 31 has one function: each of the two scans read it alone, not the 30 functions of the node.
    expect(uevents() - before).toBeLessThanOrEqual(2);
  });
});
