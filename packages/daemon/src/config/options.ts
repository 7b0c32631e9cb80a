import { Option } from 'commander';

/** `--dry-run` -> `GPUCC_DRY_RUN`: the one naming rule that ties every flag to its variable. */
export function envVarFor(flags: string): string {
  const long = /--([a-z0-9][a-z0-9-]*)/.exec(flags)?.[1];
  if (long === undefined) throw new TypeError(`option ${JSON.stringify(flags)} has no --long name`);
  return `GPUCC_${long.replaceAll('-', '_').toUpperCase()}`;
}

export interface MirroredOptionSettings {
  /** The variable that mirrors the flag; derived from the long name when absent. */
  env?: string;
  default?: string;
}

/**
 * An option that takes a value and is mirrored by an environment variable: `--resync <ms>` =
 * `GPUCC_RESYNC`. Commander gives the flag precedence over the variable. Values stay strings here;
 * `readOptions` validates them so that errors can name both spellings.
 */
export function mirroredOption(flags: string, description: string, settings: MirroredOptionSettings = {}): Option {
  const option = new Option(flags, description).env(settings.env ?? envVarFor(flags));
  return settings.default === undefined ? option : option.default(settings.default);
}

/**
 * A boolean flag mirrored by a variable. Commander sets a boolean to true whenever its variable is
 * defined, even `GPUCC_DRY_RUN=false`; `readOptions` re-reads the variable and parses it strictly.
 */
export function mirroredFlag(flags: string, description: string, settings: { env?: string } = {}): Option {
  if (/[<[]/.test(flags)) throw new TypeError(`flag ${JSON.stringify(flags)} must not take a value`);
  return new Option(flags, description).env(settings.env ?? envVarFor(flags));
}
