// The naming contract across operands: what the device plugin advertises and allocates must be exactly
// what kata-manager's CDI specs describe (resource name == CDI kind, device ID == CDI device name,
// same device nodes), on every simulated profile and device-node model.
import { createLogger } from '@gpucc/daemon';
import { describe, expect, it } from 'vitest';
import { generate } from '../packages/kata-manager/src/commands.js';
import { allocate } from '../packages/sandbox-device-plugin/src/allocate.js';
import { scanInventory } from '../packages/sandbox-device-plugin/src/inventory.js';
import { simNode } from '../packages/sim/test/helpers.js';
import { bind } from '../packages/vfio-manager/src/commands.js';

const ALIASES = { gpuAlias: 'pgpu', nvswitchAlias: 'nvswitch' };

async function boundNode(profile: string) {
  const node = simNode(profile);
  const result = await bind(
    node.sysfs,
    { selection: { all: true }, nvswitches: true, allowForeignGroupMembers: true, dryRun: false },
    {
      logger: createLogger({ name: 'test', format: 'json', level: 'silent' }),
      loadModules: true,
      modprobe: { path: `${node.root}/usr/sbin/modprobe` },
      unbindTimeoutMs: 5_000,
      deviceNodeTimeoutMs: 5_000,
    },
  );
  expect(result.report?.ok, profile).toBe(true);
  return node;
}

describe.each(['hgx-h100-8', 'workstation-mixed', 'iommufd-h200-2', 'grace-gh200-1', 'hgx-b200-8'])(
  'naming contract on %s',
  (profile) => {
    it('every advertised resource/device is a CDI kind/device with the same device nodes, and nothing else', async () => {
      const { sysfs } = await boundNode(profile);
      const inventory = scanInventory(sysfs, { nvswitches: true, aliases: ALIASES }, undefined);
      const generated = generate(sysfs, { aliases: ALIASES });

      const plugin = inventory.devices.map((d) => `${d.resourceName}=${d.id} ${[...d.deviceNodes].sort().join(',')}`);
      const cdi = generated.specs.flatMap((s) =>
        s.spec.devices.map(
          (d) =>
            `${s.spec.kind}=${d.name} ${d.containerEdits.deviceNodes
              .map((n) => n.path)
              .sort()
              .join(',')}`,
        ),
      );
      expect(plugin.length).toBeGreaterThan(0);
      expect(plugin.sort()).toEqual(cdi.sort());

      // and what Allocate hands a container is what the spec injects
      for (const device of inventory.devices) {
        const served = new Map(
          inventory.devices.filter((d) => d.resourceName === device.resourceName).map((d) => [d.id, d]),
        );
        const response = allocate(
          { container_requests: [{ devices_ids: [device.id] }] },
          { resourceName: device.resourceName, devices: served, cdiDevices: true },
        );
        const spec = generated.specs.find((s) => s.spec.kind === device.resourceName)!;
        const cdiDevice = spec.spec.devices.find((d) => d.name === device.id)!;
        expect(response.container_responses[0]!.devices.map((d) => d.host_path).sort()).toEqual(
          cdiDevice.containerEdits.deviceNodes.map((n) => n.path).sort(),
        );
        expect(response.container_responses[0]!.cdi_devices).toEqual([{ name: `${spec.spec.kind}=${device.id}` }]);
      }
    });
  },
);
