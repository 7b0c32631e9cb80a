import { GpuccError } from '@gpucc/hal';
import type { CommonConfig } from '../config/common.js';
import { createLogger, type Logger } from '../log/index.js';

/** One-shot commands log to stderr, so stdout holds only the answer (table or JSON). */
export function stderrLogger(binary: string, config: CommonConfig): Logger {
  return createLogger({
    name: binary,
    format: config.logFormat,
    level: config.logLevel,
    destination: process.stderr,
    isTty: process.stderr.isTTY === true,
  });
}

/** A command line that cannot be run as given (exit 2): the hint points at the command's help. */
export function usageError(binary: string, message: string): GpuccError {
  return new GpuccError('ERR_GPUCC_USAGE', message, { hint: `see ${binary} <command> --help` });
}
