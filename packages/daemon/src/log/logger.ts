import { isGpuccError } from '@gpucc/hal';
import { type Logger, pino } from 'pino';
import type { LogFormat, LogLevel } from '../config/common.js';
import { type LineSink, prettyStream } from './pretty.js';

export type { Logger } from 'pino';

export interface LoggerOptions {
  /** The binary's name; every line carries it. */
  name: string;
  format: LogFormat;
  level: LogLevel;
  /** Where lines go (default stdout). Tests pass a sink that collects them. */
  destination?: LineSink;
  /** Whether `auto` means pretty; default: whether stdout is a terminal. */
  isTty?: boolean;
}

/** `auto` is pretty on a terminal and JSON everywhere else (a pod's log, a pipe, a file). */
export function resolveLogFormat(format: LogFormat, isTty = process.stdout.isTTY === true): 'json' | 'pretty' {
  if (format !== 'auto') return format;
  return isTty ? 'pretty' : 'json';
}

/** GpuccErrors keep their code, hint, cause and details; other errors get pino's serializer (with stack). */
export function serializeError(error: unknown): unknown {
  if (isGpuccError(error)) return { type: error.name, ...error.toJSON() };
  if (error instanceof Error) return pino.stdSerializers.err(error);
  return error;
}

/**
 * The logger of a gpucc binary: pino JSON, string levels, ISO times, and an `event` on every line
 * (`log` where the caller gave none, so that queries on `event` never miss a line).
 * Per-device lines come from `logger.child({ device: bdf })`.
 */
export function createLogger(options: LoggerOptions): Logger {
  const format = resolveLogFormat(options.format, options.isTty);
  const sink = options.destination;
  const destination =
    format === 'pretty' ? prettyStream(sink ?? process.stdout) : (sink ?? pino.destination({ fd: 1, sync: true }));
  return pino(
    {
      name: options.name,
      level: options.level,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      mixin: () => ({ event: 'log' }),
      serializers: { err: serializeError },
    },
    destination as pino.DestinationStream,
  );
}
