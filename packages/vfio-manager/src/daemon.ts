import { createLogger, openHost, readCommonConfig } from '@gpucc/daemon';
import type { Command } from 'commander';
import { applyOptionsOf, BINARY, type Context, VERSION } from './cli.js';
import { reconcileOnce, watchForChanges } from './reconcile.js';

/**
 * `vfio-manager run`: every GPU kept toward `--desired`, reconciled at start, on every change event
 * and every resync; the health server until SIGTERM. The runtime parts load here only.
 */
export async function runDaemon(
  command: Command,
  o: {
    desired: 'vfio' | 'none';
    nvswitches: boolean;
    allowForeignGroupMembers: boolean;
    resyncInterval: number;
    loadModules: boolean;
    modprobe: string;
    unbindTimeout: number;
    deviceNodeTimeout: number;
    lockTimeout: number;
  },
): Promise<number> {
  const { capV8Tiers, createMetrics, serveWatchedLoop, shutdownOnSignals } = await import('@gpucc/daemon/runtime');
  const config = readCommonConfig(command);
  const logger = createLogger({ name: BINARY, format: config.logFormat, level: config.logLevel });
  const stop = shutdownOnSignals(logger);
  capV8Tiers();
  const host = await openHost(config.hostRoot, logger);
  const ctx: Context = { ...host, logger };
  logger.info(
    { event: 'daemon.start', version: VERSION, desired: o.desired, hostRoot: config.hostRoot },
    `${BINARY} ${VERSION} starting`,
  );
  const metrics = createMetrics({ binary: BINARY, version: VERSION });
  // A reconcile can create /dev/vfio (modprobe), and nodes come and go: the watches follow.
  await serveWatchedLoop({
    watch: (trigger) => watchForChanges(ctx.sysfs, trigger),
    reconcile: (signal) =>
      reconcileOnce(
        ctx.sysfs,
        { desired: o.desired, nvswitches: o.nvswitches, allowForeignGroupMembers: o.allowForeignGroupMembers },
        applyOptionsOf(ctx, o, signal),
      ),
    resyncMs: o.resyncInterval,
    metricsAddress: config.metricsAddress,
    metrics,
    logger,
    stop,
  }); // the group in flight finishes or rolls back; bindings stay as they are
  logger.info({ event: 'daemon.stop' }, `${BINARY} stopped; bindings left as they are`);
  return 0;
}
