import path from 'node:path';
import type { Command } from 'commander';
import * as z from 'zod/mini';
import { type ListenAddress, parseListenAddress } from './listen-address.js';
import { mirroredOption } from './options.js';
import { parsedString, readOptions } from './read-options.js';

export const LOG_FORMATS = ['json', 'pretty', 'auto'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Loopback by default, so a binary started by hand exposes nothing. Not 9400: that is
 * dcgm-exporter's port, which runs on the same GPU nodes. A DaemonSet whose kubelet probes the pod
 * IP sets `GPUCC_METRICS_ADDRESS=:<port>`.
 */
export const DEFAULT_METRICS_ADDRESS = '127.0.0.1:9470';

/** One port per binary, so all four can run on one host (systemd units, hostNetwork pods). */
export const METRICS_PORTS = {
  'cc-manager': 9471,
  'vfio-manager': 9472,
  'kata-manager': 9473,
  'sandbox-device-plugin': 9474,
} as const;

export function defaultMetricsAddress(binary: keyof typeof METRICS_PORTS): string {
  return `127.0.0.1:${METRICS_PORTS[binary]}`;
}

export interface CommonConfig {
  /** Absolute: `/`, `/host` or a simulated node. */
  hostRoot: string;
  logFormat: LogFormat;
  logLevel: LogLevel;
  metricsAddress: ListenAddress;
}

/** Adds --host-root, --log-format, --log-level and --metrics-address, each with its GPUCC_ variable. */
export function addCommonOptions(command: Command, defaults: { metricsAddress?: string } = {}): Command {
  return command
    .addOption(mirroredOption('--host-root <dir>', 'host root: /, /host or a simulated node', { default: '/' }))
    .addOption(
      mirroredOption('--log-format <format>', `log format: ${LOG_FORMATS.join(', ')} (auto: pretty on a terminal)`, {
        default: 'auto',
      }),
    )
    .addOption(mirroredOption('--log-level <level>', `log level: ${LOG_LEVELS.join(', ')}`, { default: 'info' }))
    .addOption(
      mirroredOption('--metrics-address <host:port>', '/healthz, /readyz and /metrics listen here (:port = all)', {
        default: defaults.metricsAddress ?? DEFAULT_METRICS_ADDRESS,
      }),
    );
}

export const commonSchema = z.object({
  hostRoot: z.pipe(
    z.string().check(z.minLength(1, 'must not be empty')),
    z.transform((dir: string) => path.resolve(dir)),
  ),
  logFormat: z.enum(LOG_FORMATS),
  logLevel: z.enum(LOG_LEVELS),
  metricsAddress: parsedString(parseListenAddress, 'expected host:port, [ipv6]:port or :port with a port of 0-65535'),
});

/** The common options of a parsed command, validated (ERR_GPUCC_INVALID_CONFIG on a bad value). */
export function readCommonConfig(command: Command): CommonConfig {
  return readOptions(command, commonSchema);
}
