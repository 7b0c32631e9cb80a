import type { HostRoot } from '@gpucc/hal';
import { FakeKubelet, type FakeKubeletOptions } from '@gpucc/sim';
import { silentLogger } from '@gpucc/testbed/fixtures';
import { afterEach } from 'vitest';
import { PluginManager, type PluginManagerOptions } from '../src/plugin-manager.js';
import type { PluginSettings } from '../src/settings.js';

const running: Array<() => Promise<void>> = [];

// Registered after the sim helper's own afterEach (it is imported first), so it runs before the
// node directories are removed: servers and watches close while their files still exist.
afterEach(async () => {
  for (const stop of running.splice(0).reverse()) await stop();
});

/** A started fake kubelet on the node, stopped after the test. */
export async function startKubelet(root: string, options: Omit<FakeKubeletOptions, 'root'> = {}) {
  const kubelet = new FakeKubelet({ root, ...options });
  await kubelet.start();
  running.push(() => kubelet.stop());
  return kubelet;
}

export const DEFAULT_SETTINGS: PluginSettings = {
  nvswitches: false,
  aliases: {},
  deviceModel: 'auto',
  cdiDevices: false,
  ccTopology: 'enforce',
};

/** The plugin in-process, with fast retries; stopped (gracefully) after the test. */
export async function startPlugin(
  sysfs: HostRoot,
  settings: Partial<PluginSettings> = {},
  options: Partial<PluginManagerOptions> = {},
) {
  const manager = new PluginManager({
    sysfs,
    logger: silentLogger(),
    settings: { ...DEFAULT_SETTINGS, ...settings },
    resyncMs: 60_000, // the watches must do the work; the resync is only the safety net
    registration: { timeoutMs: 5_000, backoff: { initialMs: 20, maxMs: 200, factor: 2 } },
    stopGraceMs: 500,
    streamlessMs: 30_000,
    ...options,
  });
  await manager.start();
  running.push(() => manager.stop());
  return manager;
}

/** IDs and health of a resource as the kubelet sees them. */
export function seen(kubelet: FakeKubelet, resource: string): Record<string, string> {
  const r = kubelet.state().resources[resource];
  return Object.fromEntries((r?.devices ?? []).map((d) => [d.ID, d.health]));
}

/** Waits until `test` holds, checking every few ms; only for conditions with no event to wait on. */
export async function until(test: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
