import path from 'node:path';
import { DeviceManager, type ManagedResource } from '@gpucc/testbed/real';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boundNode } from './node.js';
import { goReferenceBinary, packageBin, realTier, removeTempDirs, startProcess, stopAll } from './processes.js';

/**
 * The Go reference device plugin that `pnpm bench` holds sandbox-device-plugin against
 * (packages/testbed/bench/go-reference): its figures mean something only if it serves what ours
 * serves. Both, one after the other, on the same hgx-h100-8 node before the kubelet's own device
 * manager: the same devices on the same NUMA nodes, and the same device nodes for an allocation.
 */
const tier = realTier();
const reference = tier.bin ? goReferenceBinary() : undefined;
// Where the tier is required (CI), a Go reference that does not build fails instead of skipping.
if (tier.required && reference && 'why' in reference) {
  throw new Error(`the Go reference device plugin did not build: ${reference.why}`);
}
const GPU = 'nvidia.com/pgpu';
const GPUS = 8;

describe.skipIf(!tier.bin || !reference || 'why' in reference)(
  'the Go reference device plugin of the benchmark',
  () => {
    let root: string;
    let manager: DeviceManager;
    const served: Record<'ours' | 'go', ManagedResource | undefined> = { ours: undefined, go: undefined };
    const allocated: Record<'ours' | 'go', string[][]> = { ours: [], go: [] };

    /** Runs one plugin until the manager counts its GPUs, records what it serves and allocates, stops it. */
    async function serve(key: 'ours' | 'go', command: string, args: string[]): Promise<void> {
      const plugin = startProcess(key, command, args);
      served[key] = await manager.waitAllocatable(GPU, GPUS);
      const given = await manager.allocate(`pod-${key}`, GPU, 2);
      allocated[key] = [given.deviceIDs, given.devices.map((d) => d.hostPath).sort()];
      await plugin.stop();
      await manager.waitAllocatable(GPU, 0);
    }

    beforeAll(async () => {
      root = boundNode('go-reference');
      const pluginDir = path.join(root, 'var/lib/kubelet/device-plugins');
      manager = await DeviceManager.start(tier.bin!, pluginDir, 2);
      await serve('ours', process.execPath, [
        packageBin('sandbox-device-plugin'),
        'run',
        '--host-root',
        root,
        '--metrics-address',
        '127.0.0.1:0',
      ]);
      const binary = (reference as { binary: string }).binary;
      await serve('go', binary, ['--host-root', root, '--plugin-dir', pluginDir, '--resource', GPU]);
    }, 90_000);

    afterAll(async () => {
      await stopAll();
      await manager?.stop();
      removeTempDirs();
    }, 60_000);

    it('registers the same GPUs as ours, healthy, each on the same NUMA node', () => {
      const devices = (r: ManagedResource | undefined) =>
        [...(r?.devices ?? [])].sort((a, b) => (a.id < b.id ? -1 : 1));
      expect(devices(served.go)).toHaveLength(GPUS);
      expect(devices(served.go)).toEqual(devices(served.ours));
    });

    it('hands an allocated container the same kind of device nodes: /dev/vfio/vfio and each group’s node', () => {
      for (const key of ['ours', 'go'] as const) {
        const [ids, paths] = allocated[key];
        expect(ids).toHaveLength(2);
        expect(paths).toEqual(['/dev/vfio/vfio', ...ids!.map((id) => `/dev/vfio/${id}`)].sort());
      }
    });
  },
);
