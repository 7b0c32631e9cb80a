import { readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type CcModeState, HostRoot, writeCcNodeState } from '@gpucc/hal';
import { DeviceManager, type ManagerState } from '@gpucc/testbed/real';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordFigure } from './figures.js';
import { boundNode } from './node.js';
import {
  freePort,
  logged,
  type Proc,
  packageBin,
  realTier,
  removeTempDirs,
  startProcess,
  stopAll,
} from './processes.js';

/**
 * sandbox-device-plugin, run as the suite runs it (its `run` mode on a simulated hgx-h100-8 node),
 * against the kubelet's own device manager (k8s.io/kubernetes pkg/kubelet/cm/devicemanager).
 */
const tier = realTier();
const GPU = 'nvidia.com/pgpu';
const SWITCH = 'nvidia.com/nvswitch';
const GPUS = 8;
const SWITCHES = 4;

describe.skipIf(!tier.bin)('sandbox-device-plugin with the real kubelet device manager', () => {
  let root: string;
  let pluginDir: string;
  let manager: DeviceManager;
  let plugin: Proc;
  let metricsPort: number;

  /** IOMMU group (the plugin's device ID) -> the NUMA node of the devices in it, read from the node's sysfs. */
  const groups = new Map<string, number>();
  const numaOf = (id: string) => groups.get(id);
  const startPlugin = async () => {
    metricsPort = await freePort();
    plugin = startProcess('sandbox-device-plugin', process.execPath, [
      packageBin('sandbox-device-plugin'),
      'run',
      '--host-root',
      root,
      '--log-format',
      'json',
      '--metrics-address',
      `127.0.0.1:${metricsPort}`,
      '--nvswitches',
      '--cdi-devices',
      '--resync-interval',
      '2000',
    ]);
  };
  const registered = (intervalMs?: number) =>
    Promise.all([
      manager.waitAllocatable(GPU, GPUS, 30_000, intervalMs),
      manager.waitAllocatable(SWITCH, SWITCHES, 30_000, intervalMs),
    ]);
  const metric = async (name: string, labels: string) => {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
    return line ? Number(line.split(' ').at(-1)) : 0;
  };

  beforeAll(async () => {
    root = boundNode('dp');
    const vfio = path.join(root, 'sys/bus/pci/drivers/vfio-pci');
    for (const bdf of readdirSync(vfio).filter((n) => /^[0-9a-f]{4,}:/.test(n))) {
      const group = path.basename(readlinkSync(path.join(vfio, bdf, 'iommu_group')));
      groups.set(group, Number(readFileSync(path.join(vfio, bdf, 'numa_node'), 'utf8').trim()));
    }
    pluginDir = path.join(root, 'var/lib/kubelet/device-plugins');
    manager = await DeviceManager.start(tier.bin!, pluginDir, 2);
    await startPlugin();
  }, 60_000);

  afterAll(async () => {
    await stopAll();
    await manager?.stop();
    removeTempDirs();
  }, 60_000);

  it('registers nvidia.com/pgpu and nvidia.com/nvswitch; the manager records every device healthy on its NUMA node', async () => {
    await registered();
    const state = await manager.state();
    for (const [resource, count] of [
      [GPU, GPUS],
      [SWITCH, SWITCHES],
    ] as const) {
      const r = state.resources[resource]!;
      expect(r.capacity).toBe(count);
      expect(r.devices).toHaveLength(count);
      for (const d of r.devices) {
        expect(d.health).toBe('Healthy');
        expect(d.numa).toEqual([numaOf(d.id)]);
      }
    }
    // Both NUMA nodes of the profile carry GPUs, so the manager can align them.
    expect(new Set(state.resources[GPU]!.devices.map((d) => d.numa[0]))).toEqual(new Set([0, 1]));
    expect(state.checkpoint?.Data.RegisteredDevices?.[GPU]).toHaveLength(GPUS);
  });

  it('asks GetPreferredAllocation and honours it: allocations fill one NUMA node, lowest IDs first', async () => {
    const gpus = (await manager.state()).resources[GPU]!.devices;
    const onNode0 = gpus.filter((d) => d.numa[0] === 0).map((d) => d.id);
    const before = await metric('gpucc_device_plugin_preferred_allocations_total', `resource="${GPU}"`);

    const a = await manager.allocate('pod-a', GPU, 1);
    const b = await manager.allocate('pod-b', GPU, 2);
    const c = await manager.allocate('pod-c', GPU, 1);

    // The plugin's choice (one NUMA node; the fullest node that still fits; lowest IDs first), not
    // the manager's own pick from an unordered set.
    expect(a.deviceIDs).toEqual(onNode0.slice(0, 1));
    expect(b.deviceIDs).toEqual(onNode0.slice(1, 3));
    expect(c.deviceIDs).toEqual(onNode0.slice(3, 4));
    expect(await metric('gpucc_device_plugin_preferred_allocations_total', `resource="${GPU}"`)).toBe(before + 3);
  });

  it('an allocation of 2 GPUs hands the container their /dev/vfio nodes and CDI names', async () => {
    const b = (await manager.state()).checkpoint!.Data.PodDeviceEntries!.find((e) => e.PodUID === 'pod-b')!;
    const ids = Object.values(b.DeviceIDs).flat().sort();
    expect(ids).toHaveLength(2);
    // GetDeviceRunContainerOptions: what the kubelet passes to the runtime for the running container.
    const again = await manager.allocate('pod-b', GPU, 2);
    expect(again.deviceIDs).toEqual(ids);
    const paths = again.devices.map((d) => d.hostPath).sort();
    expect(paths).toEqual(['/dev/vfio/vfio', ...ids.map((id) => `/dev/vfio/${id}`)].sort());
    for (const d of again.devices) {
      expect(d.containerPath).toBe(d.hostPath);
      expect(d.permissions).toBe('mrw');
    }
    expect(again.cdiDevices.sort()).toEqual(ids.map((id) => `${GPU}=${id}`).sort());
  });

  it('a /dev/vfio node that goes away makes that GPU unhealthy in the manager, and healthy again when it is back', async () => {
    const free = (await manager.state()).resources[GPU]!.devices.find((d) => d.numa[0] === 1)!.id;
    const node = path.join(root, 'dev/vfio', free);
    rmSync(node);
    const down = await manager.waitAllocatable(GPU, GPUS - 1);
    expect(down.capacity).toBe(GPUS);
    expect(down.devices.find((d) => d.id === free)?.health).toBe('Unhealthy');
    writeFileSync(node, '', { mode: 0o600 });
    const up = await manager.waitAllocatable(GPU, GPUS);
    expect(up.devices.find((d) => d.id === free)?.health).toBe('Healthy');
  });

  it('10 kubelet restarts (sockets removed, a new manager): re-registered each time, allocations kept', async () => {
    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
      const started = performance.now();
      const { starts } = await manager.restart();
      // A new manager starts from its checkpoint with every resource at 0 until the plugin is back.
      await registered(5);
      times.push(performance.now() - started);
      const state = await manager.state();
      expect(state.starts).toBe(starts);
      expect(state.checkpoint?.Data.PodDeviceEntries?.map((e) => e.PodUID).sort()).toEqual(['pod-a', 'pod-b', 'pod-c']);
    }
    expect(plugin.logs().filter((l) => l.event === 'kubelet.registered').length).toBeGreaterThanOrEqual(2 * 11);
    times.sort((x, y) => x - y);
    recordFigure(
      'kubelet restart -> re-registered, real device manager (median of 10, ms)',
      (times[4]! + times[5]!) / 2,
    );
  }, 120_000);

  it('SIGTERM withdraws both resources from the manager at once', async () => {
    await plugin.stop('SIGTERM');
    expect(await plugin.exited).toBe(0);
    await manager.waitAllocatable(GPU, 0, 10_000);
    await manager.waitAllocatable(SWITCH, 0, 10_000);
  });

  it("the manager's checkpoint of an allocation survives a plugin restart", async () => {
    const before: ManagerState = await manager.state();
    await startPlugin();
    await logged(plugin, 'kubelet.registered');
    await registered();
    const after = await manager.state();
    // The kubelet writes its checkpoint from a Go map, so the entries come in any order.
    const byPod = (s: ManagerState) =>
      [...(s.checkpoint?.Data.PodDeviceEntries ?? [])].sort((x, y) => x.PodUID.localeCompare(y.PodUID));
    expect(byPod(after)).toEqual(byPod(before));
    expect(byPod(after)).toHaveLength(3);
    // The allocated GPUs stay taken: a new pod gets the rest of NUMA node 1 first, never pod-b's.
    const taken = new Set(before.checkpoint!.Data.PodDeviceEntries!.flatMap((e) => Object.values(e.DeviceIDs).flat()));
    const d = await manager.allocate('pod-d', GPU, 4);
    expect(d.deviceIDs.filter((id) => taken.has(id))).toEqual([]);
    expect(new Set(d.deviceIDs.map(numaOf))).toEqual(new Set([1]));
  });
});

describe.skipIf(!tier.bin)('CC topology rules through the real kubelet device manager (hgx-h100-8)', () => {
  let root: string;
  let pluginDir: string;
  let manager: DeviceManager;
  let metricsPort: number;

  /** cc-manager's mode record, as it writes it after a switch (docs/facts/cc-topology.md). */
  const record = (state: CcModeState) =>
    writeCcNodeState(new HostRoot(root), { state, since: new Date().toISOString() });
  /** A kubelet that starts on an empty node: no checkpoint, every device free. */
  const freshManager = async () => {
    await manager?.stop();
    rmSync(path.join(pluginDir, 'kubelet_internal_checkpoint'), { force: true });
    manager = await DeviceManager.start(tier.bin!, pluginDir, 2);
    await manager.waitAllocatable(GPU, GPUS);
    await manager.waitAllocatable(SWITCH, SWITCHES);
  };
  /** GetPreferredAllocation calls for GPUs the plugin answered with a set (not a refusal). */
  const preferredAnswers = async () => {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const line = text
      .split('\n')
      .find(
        (l) =>
          l.startsWith('gpucc_device_plugin_preferred_allocations_total{') &&
          l.includes(`"${GPU}"`) &&
          l.includes('result="success"'),
      );
    return line ? Number(line.split(' ').at(-1)) : 0;
  };
  /** The allocation's device IDs, or the manager's error. */
  const tryAllocate = (pod: string, resource: string, count: number, container = 'main') =>
    manager.allocate(pod, resource, count, container).then(
      (a) => a.deviceIDs,
      (error: Error) => error.message,
    );

  beforeAll(async () => {
    root = boundNode('dp-cc');
    await record('on');
    pluginDir = path.join(root, 'var/lib/kubelet/device-plugins');
    metricsPort = await freePort();
    manager = await DeviceManager.start(tier.bin!, pluginDir, 2);
    // The plugin as deployed: NVSwitches by default, --cc-topology enforce by default.
    startProcess('sandbox-device-plugin', process.execPath, [
      packageBin('sandbox-device-plugin'),
      'run',
      '--host-root',
      root,
      '--log-format',
      'json',
      '--metrics-address',
      `127.0.0.1:${metricsPort}`,
      '--cdi-devices',
    ]);
    await manager.waitAllocatable(GPU, GPUS);
    await manager.waitAllocatable(SWITCH, SWITCHES);
  }, 60_000);

  afterAll(async () => {
    await stopAll();
    await manager?.stop();
    removeTempDirs();
  }, 60_000);

  it("mode on: 2 GPUs are refused with the plugin's message and nothing is allocated; 1 GPU is allocated", async () => {
    const refused = await tryAllocate('pod-two', GPU, 2);
    // The manager asks GetPreferredAllocation (2 of 8 free), and the plugin refuses there.
    expect(refused).toMatch(/GetPreferredAllocation rpc failed/);
    expect(refused).toMatch(/ERR_GPUCC_CC_TOPOLOGY_REFUSED/);
    expect(refused).toContain(
      'mode on on Hopper allows 1 GPU per pod; request 1, or label the node nvidia.com/cc.mode=ppcie and request all 8 GPUs and 4 NVSwitches',
    );
    expect((await manager.state()).checkpoint?.Data.PodDeviceEntries ?? []).toEqual([]);
    expect(await tryAllocate('pod-one', GPU, 1)).toHaveLength(1);
  });

  it('mode ppcie: part of the node is refused; all 8 GPUs and 4 NVSwitches are allocated', async () => {
    await record('ppcie');
    await freshManager();
    const part = await tryAllocate('pod-part', GPU, 4);
    expect(part).toMatch(/ERR_GPUCC_CC_TOPOLOGY_REFUSED/);
    expect(part).toContain('mode ppcie on Hopper allows only the whole node in one pod: all 8 GPUs and 4 NVSwitches');
    const before = await preferredAnswers();
    // One pod, a container per resource (the harness answers a container's devices of every resource).
    const gpus = await tryAllocate('pod-all', GPU, GPUS, 'gpus');
    const switches = await tryAllocate('pod-all', SWITCH, SWITCHES, 'switches');
    // With no NUMA hint (Topology Manager policy none) the manager asks GetPreferredAllocation even
    // for every free device (devicesToAllocate); the plugin's answer, the whole node, is taken.
    expect(await preferredAnswers()).toBe(before + 1);
    const all = (await manager.state()).resources[GPU]!.devices.map((d) => d.id);
    expect([...(gpus as string[])].sort()).toEqual([...all].sort());
    expect(switches).toHaveLength(SWITCHES);
  }, 60_000);
});

if (!tier.bin) {
  it.skip('real tier: sandbox-device-plugin against the kubelet device manager (not built: npm run test:real)');
}
