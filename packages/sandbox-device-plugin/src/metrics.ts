import type { DaemonMetrics } from '@gpucc/daemon/runtime';

/** Counters the plugin keeps; gauges are read from its live state at each scrape. */
export class PluginCounters {
  readonly registrations = new Map<string, { success: number; failure: number }>();
  readonly allocations = new Map<string, { success: number; failure: number }>();
  readonly preferredAllocations = new Map<string, { success: number; failure: number }>();
  kubeletRestarts = 0;
  socketRestarts = 0;

  count(map: Map<string, { success: number; failure: number }>, resource: string, ok: boolean): void {
    let entry = map.get(resource);
    if (entry === undefined) {
      entry = { success: 0, failure: 0 };
      map.set(resource, entry);
    }
    if (ok) entry.success++;
    else entry.failure++;
  }
}

/** What the collector reads from the plugin at scrape time. */
export interface PluginGaugeSource {
  resources(): Array<{
    resourceName: string;
    healthy: number;
    unhealthy: number;
    streams: number;
    registered: boolean;
  }>;
}

type Registry = DaemonMetrics['registry'];
type Sample = { value: number; labels: Record<string, string> };
type Family = [name: string, help: string, type: 'gauge' | 'counter', samples: () => Sample[]];

const byResult = (map: Map<string, { success: number; failure: number }>): Sample[] =>
  [...map].flatMap(([resource, n]) => [
    { value: n.success, labels: { resource, result: 'success' } },
    { value: n.failure, labels: { resource, result: 'failure' } },
  ]);

/**
 * Registers the device plugin's series on the binary's registry, as collectors computed from live
 * state when /metrics is scraped rather than kept in step by hand.
 */
export function registerPluginMetrics(registry: Registry, counters: PluginCounters, source: PluginGaugeSource): void {
  const families: Family[] = [
    [
      'gpucc_device_plugin_devices',
      'Devices advertised to the kubelet, by resource and health.',
      'gauge',
      () =>
        source.resources().flatMap((r) => [
          { value: r.healthy, labels: { resource: r.resourceName, health: 'Healthy' } },
          { value: r.unhealthy, labels: { resource: r.resourceName, health: 'Unhealthy' } },
        ]),
    ],
    [
      'gpucc_device_plugin_registered',
      '1 when the resource is registered with the kubelet.',
      'gauge',
      () => source.resources().map((r) => ({ value: r.registered ? 1 : 0, labels: { resource: r.resourceName } })),
    ],
    [
      'gpucc_device_plugin_streams',
      'Open ListAndWatch streams, by resource.',
      'gauge',
      () => source.resources().map((r) => ({ value: r.streams, labels: { resource: r.resourceName } })),
    ],
    [
      'gpucc_device_plugin_registrations_total',
      'Register calls to the kubelet, by result.',
      'counter',
      () => byResult(counters.registrations),
    ],
    [
      'gpucc_device_plugin_allocations_total',
      'Allocate requests answered, by result.',
      'counter',
      () => byResult(counters.allocations),
    ],
    [
      'gpucc_device_plugin_preferred_allocations_total',
      'GetPreferredAllocation requests answered, by result.',
      'counter',
      () => byResult(counters.preferredAllocations),
    ],
    [
      'gpucc_device_plugin_kubelet_restarts_total',
      'Kubelet restarts detected (kubelet.sock created).',
      'counter',
      () => [{ value: counters.kubeletRestarts, labels: {} }],
    ],
    [
      'gpucc_device_plugin_socket_restarts_total',
      'Plugin servers restarted because their socket was removed.',
      'counter',
      () => [{ value: counters.socketRestarts, labels: {} }],
    ],
  ];
  for (const [name, help, type, samples] of families) registry.collect(name, help, type, samples);
}
