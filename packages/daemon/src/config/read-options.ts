import { GpuccError } from '@gpucc/hal';
import type { Command, Option } from 'commander';
import { en } from 'zod/locales';
import * as z from 'zod/mini';

import { parseBooleanWord } from './words.js';

const SOURCES: Record<string, string> = {
  cli: 'set by the flag',
  env: 'set by the environment variable',
  default: 'the default',
};

function optionFor(command: Command, key: string): Option | undefined {
  return command.options.find((option) => option.attributeName() === key);
}

/** "--log-format (GPUCC_LOG_FORMAT)": how a user can find the setting, whichever way they set it. */
export function describeOption(option: Option): string {
  const flag = option.long ?? option.flags;
  return option.envVar ? `${flag} (${option.envVar})` : flag;
}

function invalid(
  command: Command,
  option: Option | undefined,
  key: string,
  value: unknown,
  problem: string,
  allowed?: readonly unknown[],
): GpuccError {
  const name = option ? describeOption(option) : key;
  const source = command.getOptionValueSource(key) ?? 'default';
  const from = SOURCES[source] ?? `set by ${source}`;
  const message = `invalid value ${JSON.stringify(value)} for ${name}, ${from}: ${problem}`;
  return new GpuccError('ERR_GPUCC_INVALID_CONFIG', message, {
    hint: allowed
      ? `set ${name} to one of: ${allowed.join(', ')}`
      : `fix ${name}; a flag wins over its environment variable`,
    details: {
      option: option?.long ?? key,
      ...(option?.envVar ? { env: option.envVar } : {}),
      source,
      value,
      ...(allowed ? { allowed } : {}),
    },
  });
}

/** Boolean flags whose value came from their variable, parsed strictly (see `mirroredFlag`). */
function strictBooleans(command: Command, values: Record<string, unknown>): Record<string, unknown> {
  const out = { ...values };
  for (const option of command.options) {
    const key = option.attributeName();
    if (option.required || option.optional || !option.envVar) continue;
    if (command.getOptionValueSource(key) !== 'env') continue;
    const raw = process.env[option.envVar] ?? '';
    const value = raw.trim() === '' ? false : parseBooleanWord(raw); // an empty variable is false
    if (value !== undefined) out[key] = value !== option.negate;
    else throw invalid(command, option, key, process.env[option.envVar], 'not a boolean', ['true', 'false', '1', '0']);
  }
  return out;
}

/**
 * zod/mini loads no locale (every issue would read "Invalid input"). Its English messages, passed to
 * each parse here rather than set as zod's global locale, are what a user reads for a value that the
 * schema gives no message of its own: "Too small: expected number to be >0" for `--resync-interval 0`.
 */
const english = en().localeError;

/**
 * Validates a parsed command's options with a zod schema keyed by option attribute name
 * (`logFormat` for `--log-format`). The first problem becomes ERR_GPUCC_INVALID_CONFIG naming the
 * flag, its variable, where the value came from and, for enumerations, the allowed values.
 */
export function readOptions<S extends z.core.$ZodType>(command: Command, schema: S): z.output<S> {
  const values = strictBooleans(command, command.opts());
  const result = z.safeParse(schema, values, { error: english });
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const key = String(issue.path[0] ?? '');
  const allowed = issue.code === 'invalid_value' ? issue.values : undefined;
  const problem = allowed ? `expected one of ${allowed.join(', ')}` : issue.message;
  throw invalid(command, optionFor(command, key), key, values[key], problem, allowed);
}

/**
 * A string option turned into a value by `parse`; a string it refuses (undefined) is the issue
 * "<expected>", so the user reads what the option takes.
 */
export function parsedString<T>(parse: (text: string) => T | undefined, expected: string) {
  return z.pipe(
    z.string(),
    z.transform((text: string, ctx) => {
      const value = parse(text);
      if (value !== undefined) return value;
      ctx.issues.push({ code: 'custom', message: expected, input: text });
      return z.NEVER;
    }),
  );
}
