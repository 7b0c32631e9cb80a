import { createLogger, openHost, readCommonConfig } from '@gpucc/daemon';
import type { NameAliases, PciIdsSource, VfioDeviceModelSetting } from '@gpucc/hal';
import type { Command } from 'commander';
import { BINARY, VERSION } from './cli.js';
import { hostDir } from './commands.js';
import { registerSpecMetrics } from './metrics.js';
import { DeviceObserver } from './observe.js';
import { OwnWrites } from './own-writes.js';
import { reconcileOnce } from './reconcile.js';
import { watchForChanges } from './watch.js';

/**
 * `kata-manager run`: the CDI directory kept true, reconciled at start, on every change event (a
 * device node, a bind, a spec file touched by someone else) and every resync; the health server
 * until SIGTERM. The runtime parts load here only, so the one-shot commands start fast.
 */
export async function runDaemon(
  command: Command,
  o: {
    aliases: NameAliases;
    pciIds: PciIdsSource;
    deviceModel: VfioDeviceModelSetting;
    cdiDir: string;
    resyncMs: number;
  },
): Promise<number> {
  const { capV8Tiers, createMetrics, serveWatchedLoop, shutdownOnSignals } = await import('@gpucc/daemon/runtime');
  const config = readCommonConfig(command);
  const logger = createLogger({ name: BINARY, format: config.logFormat, level: config.logLevel });
  const stop = shutdownOnSignals(logger);
  capV8Tiers();
  const { sysfs } = await openHost(config.hostRoot, logger);
  logger.info(
    {
      event: 'daemon.start',
      version: VERSION,
      hostRoot: config.hostRoot,
      cdiDir: o.cdiDir,
      gpuAlias: o.aliases.gpuAlias ?? null,
      nvswitchAlias: o.aliases.nvswitchAlias ?? null,
      pciIds: o.pciIds.fallbackFile ?? null,
      vfioDeviceModel: o.deviceModel,
    },
    `${BINARY} ${VERSION} starting`,
  );
  const metrics = createMetrics({ binary: BINARY, version: VERSION });
  const specMetrics = registerSpecMetrics(metrics);
  const cdiDir = hostDir(o.cdiDir);
  const ownWrites = new OwnWrites();
  const observer = new DeviceObserver(); // a change event reads what it names; the resync, everything
  await serveWatchedLoop({
    watch: (trigger) =>
      watchForChanges(
        sysfs,
        cdiDir,
        trigger,
        (name) => ownWrites.isEcho(name, sysfs.readOptional(`${cdiDir}/${name}`)),
        observer,
      ),
    reconcile: () =>
      reconcileOnce(
        sysfs,
        { aliases: o.aliases, pciIds: o.pciIds, deviceModel: o.deviceModel, cdiDir: o.cdiDir, observer },
        logger,
        specMetrics,
        ownWrites,
      ),
    resyncMs: o.resyncMs,
    metricsAddress: config.metricsAddress,
    metrics,
    logger,
    stop,
  });
  // Removing the specs here would make running pods' devices unresolvable on a mere restart.
  logger.info({ event: 'daemon.stop' }, `${BINARY} stopped; the CDI specs stay as they are`);
  return 0;
}
