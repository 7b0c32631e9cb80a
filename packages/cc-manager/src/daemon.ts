import { createLogger, type Logger, openHost, readCommonConfig } from '@gpucc/daemon';
import type { Command } from 'commander';
import type { BACKENDS } from './backend/backend.js';
import { selectBackendFor } from './backend/select.js';
import type { CapabilityTable } from './capability.js';
import { BINARY, VERSION } from './cli.js';
import type { DefaultMode } from './desired.js';
import type { OperandLabels } from './operands.js';
import { createReconciler } from './reconcile.js';

export interface RunSettings {
  backend: (typeof BACKENDS)[number];
  gpuAdminTools: string;
  python?: string;
  nvidiaSmi: string;
  toolTimeout: number;
  maxParallel: number;
  capability: CapabilityTable;
  nodeName: string;
  kubeconfig?: string;
  defaultMode: DefaultMode;
  evictOperands: boolean;
  operandLabels: OperandLabels;
  operandWait: number;
  operandSocketPrefix: string;
  resyncInterval: number;
  watchTimeout: number;
}

/**
 * `cc-manager run`: the reconcile loop, triggered at start, by a change of this node's
 * `nvidia.com/cc.mode` label (watch, relist on 410), and by the periodic resync; failures retried with
 * backoff. SIGTERM lets a switch in flight finish, then exits 0. Kubernetes and the runtime are loaded
 * here only, so the one-shot commands start fast.
 */
export async function runDaemon(command: Command, s: RunSettings): Promise<number> {
  const [runtime, kube, { startController }] = await Promise.all([
    import('@gpucc/daemon/runtime'),
    import('@gpucc/daemon/kube'),
    import('./controller.js'),
  ]);
  const config = readCommonConfig(command);
  const logger: Logger = createLogger({ name: BINARY, format: config.logFormat, level: config.logLevel });
  const stop = runtime.shutdownOnSignals(logger);
  runtime.capV8Tiers();
  const host = await openHost(config.hostRoot, logger);
  const backend = selectBackendFor(s, logger, host);
  const client = kube.createNodeClient({
    nodeName: s.nodeName,
    config: kube.loadKubeConfig(s.kubeconfig),
    logger,
    component: BINARY,
  });
  logger.info(
    {
      event: 'daemon.start',
      version: VERSION,
      node: s.nodeName,
      backend: backend.name,
      defaultMode: s.defaultMode,
      evictOperands: s.evictOperands,
      operandLabels: s.operandLabels.keys,
      hostRoot: config.hostRoot,
    },
    `${BINARY} ${VERSION} starting for node ${s.nodeName}`,
  );
  const metrics = runtime.createMetrics({ binary: BINARY, version: VERSION });
  const reconcile = createReconciler({
    sysfs: host.sysfs,
    backend,
    capability: s.capability,
    logger,
    maxParallel: s.maxParallel,
    client,
    defaultMode: s.defaultMode,
    evictOperands: s.evictOperands,
    operandLabels: s.operandLabels,
    operandWaitMs: s.operandWait,
    operandSocketPrefix: s.operandSocketPrefix,
    delay: runtime.abortableDelay,
  });
  const controller = startController({
    client,
    reconcile,
    resyncMs: s.resyncInterval,
    signal: stop.signal,
    logger,
    metrics,
    watchTimeoutSeconds: s.watchTimeout,
  });
  const { loop } = controller;

  const server = await runtime.startHealthServer({
    address: config.metricsAddress,
    readiness: () => runtime.loopReadiness(loop.state),
    registry: metrics.registry,
    logger,
  });
  stop.signal.addEventListener('abort', () => server.markShuttingDown());
  await controller.done; // a switch in flight finishes first
  await server.close();
  logger.info({ event: 'daemon.stop' }, `${BINARY} stopped; devices and labels left as they are`);
  return 0;
}
