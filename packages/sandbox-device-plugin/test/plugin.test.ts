import path from 'node:path';
import { localFs, readAdvertisedDevices } from '@gpucc/hal';
import {
  DEVICE_PLUGIN_DIR,
  devicePluginApi,
  GrpcServer,
  type ListAndWatchResponse,
  type RegisterRequest,
  unaryCall,
} from '@gpucc/hal/kubelet';
import { DevicePluginClient } from '@gpucc/sim';
import { bindAll } from '@gpucc/testbed/fixtures';
import { boundNode, simNode } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import { seen, startKubelet, startPlugin, until } from './helpers.js';

const PGPU = 'nvidia.com/pgpu';
const HGX_GPUS = ['23', '27', '31', '35', '39', '43', '47', '51'];
const allHealthy = (ids: string[]) => Object.fromEntries(ids.map((id) => [id, 'Healthy']));

describe('registration and ListAndWatch', () => {
  it('hgx-h100-8 with NVSwitches: registers both resources; the kubelet sees 8 pgpu and 4 nvswitch, all allocatable', async () => {
    const { root, sysfs } = await boundNode('hgx-h100-8', { nvswitches: true });
    const kubelet = await startKubelet(root);
    const plugin = await startPlugin(sysfs, { nvswitches: true });
    const state = await kubelet.waitFor(
      (s) => s.resources[PGPU]?.allocatable === 8 && s.resources['nvidia.com/nvswitch']?.allocatable === 4,
    );
    expect(state.resources[PGPU]).toMatchObject({
      endpoint: 'sandbox-pgpu.sock',
      registered: true,
      streaming: true,
      capacity: 8,
      options: { pre_start_required: false, get_preferred_allocation_available: true },
    });
    expect(state.resources['nvidia.com/nvswitch']?.endpoint).toBe('sandbox-nvswitch.sock');
    expect(seen(kubelet, PGPU)).toEqual(allHealthy(HGX_GPUS));
    expect(seen(kubelet, 'nvidia.com/nvswitch')).toEqual(allHealthy(['56', '58', '60', '62']));
    expect(state.resources[PGPU]!.devices.map((d) => d.topology?.nodes.map((n) => n.ID))).toEqual([
      ['0'],
      ['0'],
      ['0'],
      ['0'],
      ['1'],
      ['1'],
      ['1'],
      ['1'],
    ]);
    await until(() => plugin.readiness().ready);
  });

  it('serves and re-registers a node whose kubelet starts later: it never gives up', async () => {
    const { root, sysfs } = await boundNode('h100-pcie-1');
    const plugin = await startPlugin(sysfs);
    await until(() => (plugin.resources()[0]?.lastError ?? '').includes('kubelet.sock'));
    expect(plugin.readiness()).toMatchObject({ ready: false, reason: expect.stringMatching(/not registered/) });
    const kubelet = await startKubelet(root);
    await kubelet.waitFor((s) => s.resources[PGPU]?.allocatable === 1);
    await until(() => plugin.readiness().ready);
  });

  it('a node whose device-plugin directory appears only later is served once it exists', async () => {
    const { root, sysfs } = await boundNode('h100-pcie-1');
    localFs.removeSync(path.join(root, DEVICE_PLUGIN_DIR));
    const plugin = await startPlugin(sysfs, {}, { resyncMs: 50 });
    expect(plugin.readiness().reason).toMatch(/not serving/);
    const kubelet = await startKubelet(root); // creates the directory, as a starting kubelet does
    await kubelet.waitFor((s) => s.resources[PGPU]?.allocatable === 1);
  });

  it('a kubelet that sends the socket path as :authority cannot dial back; the plugin says so and keeps trying', async () => {
    const { root, sysfs } = await boundNode('h100-pcie-1');
    const kubelet = await startKubelet(root, { legacyAuthority: true });
    const plugin = await startPlugin(sysfs);
    const state = await kubelet.waitFor((s) => s.rejected.length >= 2);
    expect(state.rejected[0]).toMatchObject({
      resourceName: PGPU,
      error: expect.stringMatching(/failed to dial device plugin/),
    });
    expect(plugin.readiness().reason).toMatch(/failed to dial device plugin/);
  });

  it('sends every change to every open ListAndWatch stream', async () => {
    const { root, sysfs } = await boundNode('h100-pcie-1');
    const kubelet = await startKubelet(root);
    await startPlugin(sysfs);
    await kubelet.waitFor((s) => s.resources[PGPU]?.allocatable === 1);
    const client = new DevicePluginClient(kubelet.endpointPath(PGPU)!);
    const messages: ListAndWatchResponse[] = [];
    const stream = client.listAndWatch();
    stream.on('data', (m: ListAndWatchResponse) => messages.push(m));
    stream.on('error', () => {});
    await until(() => messages.length === 1);
    localFs.removeSync(path.join(root, 'dev/vfio/11'));
    await kubelet.waitFor((s) => s.resources[PGPU]?.allocatable === 0);
    await until(() => messages.length === 2);
    expect(messages.map((m) => m.devices.map((d) => `${d.ID} ${d.health}`))).toEqual([
      ['11 Healthy'],
      ['11 Unhealthy'],
    ]);
    stream.cancel();
    client.close();
  });
});

describe('health follows the device node and the driver, both ways', () => {
  it('the device node vanishing and coming back (udev) turns the device Unhealthy and Healthy again', async () => {
    const { root, sysfs } = await boundNode('hgx-h100-8');
    const kubelet = await startKubelet(root);
    await startPlugin(sysfs);
    await kubelet.waitFor((s) => s.resources[PGPU]?.allocatable === 8);
    localFs.removeSync(path.join(root, 'dev/vfio/31'));
    await kubelet.waitFor((s) => s.resources[PGPU]?.allocatable === 7);
    expect(seen(kubelet, PGPU)).toMatchObject({ '31': 'Unhealthy', '27': 'Healthy' });
    localFs.writeFileSync(path.join(root, 'dev/vfio/31'), '', 0o600);
    await kubelet.waitFor((s) => s.resources[PGPU]?.allocatable === 8);
  });

  it('unbind from vfio-pci → Unhealthy (capacity kept); bind again → Healthy', async () => {
    const { root, sysfs } = await boundNode('hgx-h100-8');
    const kubelet = await startKubelet(root);
    await startPlugin(sysfs);
    await kubelet.waitFor((s) => s.resources[PGPU]?.allocatable === 8);
    await sysfs.write('sys/bus/pci/drivers/vfio-pci/unbind', '0000:53:00.0');
    const down = await kubelet.waitFor((s) => s.resources[PGPU]?.allocatable === 7);
    expect(down.resources[PGPU]!.capacity).toBe(8);
    expect(seen(kubelet, PGPU)['39']).toBe('Unhealthy');
    // The health the kubelet keeps in memory is in the plugin's record too, for gpucc status.
    expect(readAdvertisedDevices(sysfs)[`${PGPU}=39`]).toMatchObject({
      health: 'Unhealthy',
      functions: ['0000:53:00.0'],
      reason: expect.stringMatching(/^no longer advertisable/),
    });
    await sysfs.write('sys/bus/pci/drivers/vfio-pci/bind', '0000:53:00.0');
    await kubelet.waitFor((s) => s.resources[PGPU]?.allocatable === 8);
    await until(() => readAdvertisedDevices(sysfs)[`${PGPU}=39`]?.health === 'Healthy');
    expect(Object.keys(readAdvertisedDevices(sysfs))).toHaveLength(8);
  });

  it('PCI remove + rescan: Unhealthy while gone and while on nvidia after the rescan; Healthy once bound to VFIO again', async () => {
    const { root, sysfs } = await boundNode('hgx-h100-8');
    const kubelet = await startKubelet(root);
    await startPlugin(sysfs);
    await kubelet.waitFor((s) => s.resources[PGPU]?.allocatable === 8);
    await sysfs.write('sys/bus/pci/devices/0000:13:00.0/remove', '1');
    await kubelet.waitFor((s) => seen(kubelet, PGPU)['23'] === 'Unhealthy' && s.resources[PGPU]?.capacity === 8);
    await sysfs.write('sys/bus/pci/rescan', '1');
    expect(sysfs.readlink('sys/bus/pci/devices/0000:13:00.0/driver')).toMatch(/nvidia$/); // the host driver took it
    await bindAll(sysfs, { devices: ['0000:13:00.0'] });
    await kubelet.waitFor((s) => s.resources[PGPU]?.allocatable === 8);
  });

  it('a GPU bound to VFIO after the start appears without a restart, and its resource registers then', async () => {
    const { root, sysfs } = simNode('hgx-h100-8');
    const kubelet = await startKubelet(root);
    const plugin = await startPlugin(sysfs);
    expect(plugin.readiness()).toEqual({ ready: false, reason: 'no GPU or NVSwitch on a VFIO driver found yet' });
    await bindAll(sysfs, { devices: ['0000:33:00.0'] });
    await kubelet.waitFor((s) => s.resources[PGPU]?.allocatable === 1);
    expect(seen(kubelet, PGPU)).toEqual({ '31': 'Healthy' });
    await bindAll(sysfs);
    await kubelet.waitFor((s) => s.resources[PGPU]?.allocatable === 8);
    expect(kubelet.state().resources[PGPU]!.registrations).toBe(1);
  });
});

describe('allocation through the kubelet', () => {
  it('allocates on one NUMA node via GetPreferredAllocation, refuses unknown IDs, and names CDI devices when enabled', async () => {
    const { root, sysfs } = await boundNode('hgx-h100-8');
    const kubelet = await startKubelet(root);
    await startPlugin(sysfs, { cdiDevices: true });
    await kubelet.waitFor((s) => s.resources[PGPU]?.allocatable === 8);
    const first = await kubelet.allocate(PGPU, 3);
    expect(first.deviceIds).toEqual(['23', '27', '31']);
    expect(first.response.devices.map((d) => d.host_path)).toEqual([
      '/dev/vfio/vfio',
      '/dev/vfio/23',
      '/dev/vfio/27',
      '/dev/vfio/31',
    ]);
    expect(first.response.cdi_devices.map((c) => c.name)).toEqual([
      'nvidia.com/pgpu=23',
      'nvidia.com/pgpu=27',
      'nvidia.com/pgpu=31',
    ]);
    // Node 0 has one GPU left: two more come from node 1.
    expect((await kubelet.allocate(PGPU, 2)).deviceIds).toEqual(['39', '43']);
    await expect(kubelet.allocate(PGPU, 4)).rejects.toThrow(/Requested: 4, Available: 3/);

    const client = new DevicePluginClient(kubelet.endpointPath(PGPU)!);
    await expect(client.allocate({ container_requests: [{ devices_ids: ['23', '7'] }] })).rejects.toMatchObject({
      code: 5, // NOT_FOUND
      details: expect.stringMatching(/ERR_GPUCC_UNKNOWN_DEVICE_ID: .*unknown device ID "7"/),
    });
    await expect(
      client.getPreferredAllocation({
        container_requests: [{ available_deviceIDs: ['23'], must_include_deviceIDs: ['8'], allocation_size: 1 }],
      }),
    ).rejects.toMatchObject({ code: 5 });
    expect(await client.preStartContainer({ devices_ids: ['23'] })).toEqual({});
    client.close();
  });

  it('iommufd-h200-2: Allocate gives the vfio cdev of the device', async () => {
    const { root, sysfs } = await boundNode('iommufd-h200-2');
    const kubelet = await startKubelet(root);
    await startPlugin(sysfs);
    await kubelet.waitFor((s) => s.resources[PGPU]?.allocatable === 2);
    expect(seen(kubelet, PGPU)).toEqual(allHealthy(['0', '1']));
    const allocation = await kubelet.allocate(PGPU, 1);
    expect(allocation.response.devices).toEqual([
      { container_path: '/dev/vfio/devices/vfio0', host_path: '/dev/vfio/devices/vfio0', permissions: 'mrw' },
    ]);
  });
});

describe('kubelet restarts and shutdown', () => {
  it('20 kubelet restarts in a row: re-registered each time with the same devices', async () => {
    const { root, sysfs } = await boundNode('hgx-h100-8', { nvswitches: true });
    const kubelet = await startKubelet(root);
    const plugin = await startPlugin(sysfs, { nvswitches: true });
    await kubelet.waitFor(
      (s) => s.resources[PGPU]?.allocatable === 8 && s.resources['nvidia.com/nvswitch']?.allocatable === 4,
    );
    const before = kubelet.state().resources;
    for (let i = 1; i <= 20; i++) {
      await kubelet.restart({ delayMs: i % 5 === 0 ? 30 : 0 });
      const state = await kubelet.waitFor(
        (s) =>
          s.resources[PGPU]?.registrations === i + 1 &&
          s.resources['nvidia.com/nvswitch']?.registrations === i + 1 &&
          s.resources[PGPU].allocatable === 8 &&
          s.resources['nvidia.com/nvswitch'].allocatable === 4,
      );
      expect(state.resources[PGPU]!.devices).toEqual(before[PGPU]!.devices);
      expect(state.resources['nvidia.com/nvswitch']!.devices).toEqual(before['nvidia.com/nvswitch']!.devices);
    }
    expect(plugin.counters.kubeletRestarts).toBeGreaterThanOrEqual(20);
    await until(() => plugin.readiness().ready);
  });

  it('registers again as soon as kubelet.sock is back, however long its retry backoff', async () => {
    const { root, sysfs } = await boundNode('h100-pcie-1');
    const kubelet = await startKubelet(root);
    const long = { timeoutMs: 5_000, backoff: { initialMs: 60_000, maxMs: 60_000, factor: 1 } };
    const plugin = await startPlugin(sysfs, {}, { registration: long });
    await kubelet.waitFor((s) => s.resources[PGPU]?.allocatable === 1);
    // Down for a while: the plugin's first attempt finds no kubelet.sock and waits its 60 s backoff.
    await kubelet.restart({ delayMs: 200 });
    await kubelet.waitFor((s) => s.resources[PGPU]?.registrations === 2 && s.resources[PGPU].allocatable === 1);
    expect(plugin.counters.kubeletRestarts).toBe(1);
  });

  it('our socket deleted by someone else: serve again and register again', async () => {
    const { root, sysfs } = await boundNode('h100-pcie-1');
    const kubelet = await startKubelet(root);
    await startPlugin(sysfs);
    await kubelet.waitFor((s) => s.resources[PGPU]?.allocatable === 1);
    await localFs.removeFile(path.join(root, DEVICE_PLUGIN_DIR, 'sandbox-pgpu.sock'));
    await kubelet.waitFor((s) => s.resources[PGPU]?.registrations === 2 && s.resources[PGPU].allocatable === 1);
    expect(localFs.kindOf(path.join(root, DEVICE_PLUGIN_DIR, 'sandbox-pgpu.sock'))).toBe('other');
  });

  it('stop: readiness says shutting down, the kubelet gets an empty list, the socket is removed', async () => {
    const { root, sysfs } = await boundNode('hgx-h100-8');
    const kubelet = await startKubelet(root);
    const plugin = await startPlugin(sysfs);
    await kubelet.waitFor((s) => s.resources[PGPU]?.allocatable === 8);
    const updates: number[] = [];
    kubelet.onChange(() => updates.push(kubelet.state().resources[PGPU]!.capacity));
    const stopping = plugin.stop();
    expect(plugin.readiness()).toEqual({ ready: false, reason: 'shutting down' });
    await stopping;
    const state = await kubelet.waitFor((s) => !s.resources[PGPU]!.streaming);
    expect(updates).toContain(0); // the empty list arrived before the stream ended
    expect(state.resources[PGPU]!.capacity).toBe(0);
    expect(localFs.listDir(path.join(root, DEVICE_PLUGIN_DIR)).sort()).toEqual(['kubelet.sock']);
  });
});

describe('fake kubelet', () => {
  it('refuses an unsupported version and an invalid resource name with the kubelet’s messages', async () => {
    const { root } = simNode('h100-pcie-1');
    const kubelet = await startKubelet(root);
    await expect(
      register(kubelet.socket, { version: 'v1beta2', endpoint: 'x.sock', resource_name: 'nvidia.com/pgpu' }),
    ).rejects.toMatchObject({
      details: 'requested API version "v1beta2" is not supported by kubelet. Supported versions are ["v1beta1"]',
    });
    await expect(
      register(kubelet.socket, { version: 'v1beta1', endpoint: 'x.sock', resource_name: 'kubernetes.io/pgpu' }),
    ).rejects.toMatchObject({ details: 'the ResourceName "kubernetes.io/pgpu" is invalid' });
    expect(kubelet.state().rejected).toHaveLength(2);
  });

  it('a stream that ends makes every device unhealthy at once, and the resource is dropped after the grace period', async () => {
    const { root } = simNode('h100-pcie-1');
    const kubelet = await startKubelet(root, { endpointGraceMs: 50 });
    // A minimal plugin that sends one device, then ends its stream without an empty list (a crash).
    const api = devicePluginApi().devicePlugin;
    let end: (() => void) | undefined;
    const server = new GrpcServer()
      .unary(api.GetDevicePluginOptions, () => ({}))
      .serverStream(api.ListAndWatch, (_request, stream) => {
        stream.write({ devices: [{ ID: '7', health: 'Healthy' }] });
        end = () => stream.end();
      });
    await server.listen(path.join(kubelet.dir, 'crashy.sock'));
    await register(kubelet.socket, { version: 'v1beta1', endpoint: 'crashy.sock', resource_name: 'example.com/thing' });
    await kubelet.waitFor((s) => s.resources['example.com/thing']?.allocatable === 1);
    end!();
    const ended = await kubelet.waitFor((s) => s.resources['example.com/thing']?.streaming === false);
    expect(ended.resources['example.com/thing']).toMatchObject({ capacity: 1, allocatable: 0 });
    await kubelet.waitFor((s) => s.resources['example.com/thing']?.capacity === 0);
    await server.close(100);
  });
});

const register = (socket: string, request: RegisterRequest) =>
  unaryCall(socket, devicePluginApi().registration.Register, request, { timeoutMs: 5_000 });
