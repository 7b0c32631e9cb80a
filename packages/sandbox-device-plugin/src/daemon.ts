import { type CommonConfig, createLogger, openHost } from '@gpucc/daemon';
import { createMetrics, shutdownOnSignals, startHealthServer } from '@gpucc/daemon/runtime';
import { type HostRoot, PLUGIN_SOCKET_PREFIX } from '@gpucc/hal';
import { DEVICE_PLUGIN_DIR } from '@gpucc/hal/kubelet';
import { BINARY, VERSION } from './cli.js';
import { registerPluginMetrics } from './metrics.js';
import { PluginManager } from './plugin-manager.js';
import { refuseIfServed } from './resource-server.js';
import type { PluginSettings } from './settings.js';

/** Timings of the run mode; fixed here, the resync interval is a flag. */
export const RUN_TIMINGS = {
  registration: {
    // The kubelet dials back inside Register for up to 10 s; leave it that and a margin.
    timeoutMs: 12_000,
    backoff: { initialMs: 100, maxMs: 10_000, factor: 2 },
  },
  stopGraceMs: 2_000,
  streamlessMs: 30_000,
} as const;

/** A live server on any of our sockets (PLUGIN_SOCKET_PREFIX`*.sock`) is another instance: refuse to start (exit 1). */
async function refuseSecondInstance(sysfs: HostRoot): Promise<void> {
  for (const name of sysfs.readdir(DEVICE_PLUGIN_DIR)) {
    if (name.startsWith(PLUGIN_SOCKET_PREFIX) && name.endsWith('.sock'))
      await refuseIfServed(sysfs, `${DEVICE_PLUGIN_DIR}/${name}`);
  }
}

/**
 * The DaemonSet/systemd mode. /healthz answers from the start and never asks the kubelet; /readyz
 * is 200 only while every resource is registered and streamed from. The first SIGTERM makes /readyz
 * 503, sends every stream an empty list, closes the servers (their sockets go) and exits 0.
 */
export async function runDaemon(config: CommonConfig, settings: PluginSettings, resyncMs: number): Promise<number> {
  const logger = createLogger({ name: BINARY, format: config.logFormat, level: config.logLevel });
  const stop = shutdownOnSignals(logger);
  // No capV8Tiers() here, unlike the other daemons: Allocate is the one call with a latency target
  // (issue 17). Measured both ways in pnpm bench: 16 concurrent callers 2.4 ms with the optimizing
  // compiler, 3.4 ms without (Go 1.7-1.9 ms); resident memory after 5,000 calls 61 against 55 MB.
  const { sysfs } = await openHost(config.hostRoot, logger);
  await refuseSecondInstance(sysfs); // before the health server, so the second one exits at once
  logger.info(
    { event: 'daemon.start', version: VERSION, hostRoot: config.hostRoot, ...settings, resyncMs },
    `${BINARY} ${VERSION} starting`,
  );
  const metrics = createMetrics({ binary: BINARY, version: VERSION });
  const manager = new PluginManager({ sysfs, logger, settings, resyncMs, ...RUN_TIMINGS });
  registerPluginMetrics(metrics.registry, manager.counters, manager);
  const server = await startHealthServer({
    address: config.metricsAddress,
    readiness: () => manager.readiness(),
    registry: metrics.registry,
    logger,
  });
  stop.signal.addEventListener('abort', () => server.markShuttingDown(), { once: true });
  if (!stop.signal.aborted) await manager.start();
  await new Promise<void>((resolve) => {
    if (stop.signal.aborted) resolve();
    else stop.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  await manager.stop();
  await server.close();
  logger.info({ event: 'daemon.stop' }, `${BINARY} stopped; devices withdrawn from the kubelet`);
  return 0;
}
