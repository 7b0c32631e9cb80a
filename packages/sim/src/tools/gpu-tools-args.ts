import { pythonStrRepr } from './python-format.js';

/**
 * The fake gpu-admin-tools' command line, parsed as its argparse parser would: `--opt=value` or
 * `--opt value`, the last occurrence wins, choices checked, unknown arguments collected into one
 * `unrecognized arguments:` error. Only the flags cc-manager uses (docs/facts/cc-tools.md#gpu-admin-tools-flags, and
 * `--query-ppcie-settings`, which the doctor's firmware check reads).
 */

export type CcModeChoice = 'on' | 'off' | 'devtools';
export type PpcieModeChoice = 'on' | 'off';

export interface GpuToolsOptions {
  help: boolean;
  gpuBdf?: string;
  /** `--gpu`; absent = -1 in the real tool ("not specified"). */
  gpu?: number;
  gpuName?: string;
  devices?: string;
  queryCcMode: boolean;
  setCcMode?: CcModeChoice;
  resetAfterCcModeSwitch: boolean;
  queryPpcieMode: boolean;
  /** `--query-ppcie-settings`: the PPCIe knobs, read through the FSP (fails on firmware without PPCIe). */
  queryPpcieSettings: boolean;
  setPpcieMode?: PpcieModeChoice;
  resetAfterPpcieModeSwitch: boolean;
  resetWithOs: boolean;
  ignoreNvidiaDriver: boolean;
}

export type GpuToolsArgs = { ok: true; options: GpuToolsOptions } | { ok: false; error: string };

type ValueKey = 'gpuBdf' | 'gpu' | 'gpuName' | 'devices' | 'setCcMode' | 'setPpcieMode' | 'log';
type FlagKey =
  | 'help'
  | 'queryCcMode'
  | 'resetAfterCcModeSwitch'
  | 'queryPpcieMode'
  | 'queryPpcieSettings'
  | 'resetAfterPpcieModeSwitch'
  | 'resetWithOs'
  | 'ignoreNvidiaDriver';

const VALUE_OPTIONS: Readonly<Record<string, { key: ValueKey; choices?: readonly string[] }>> = {
  '--gpu-bdf': { key: 'gpuBdf' },
  '--gpu': { key: 'gpu' },
  '--gpu-name': { key: 'gpuName' },
  '--devices': { key: 'devices' },
  '--set-cc-mode': { key: 'setCcMode', choices: ['off', 'on', 'devtools'] },
  '--set-ppcie-mode': { key: 'setPpcieMode', choices: ['off', 'on'] },
  '--log': { key: 'log', choices: ['debug', 'info', 'warning', 'error', 'critical'] },
};

const FLAG_OPTIONS: Readonly<Record<string, FlagKey>> = {
  '-h': 'help',
  '--help': 'help',
  '--query-cc-mode': 'queryCcMode',
  '--reset-after-cc-mode-switch': 'resetAfterCcModeSwitch',
  '--query-ppcie-mode': 'queryPpcieMode',
  '--query-ppcie-settings': 'queryPpcieSettings',
  '--reset-after-ppcie-mode-switch': 'resetAfterPpcieModeSwitch',
  '--reset-with-os': 'resetWithOs',
  '--ignore-nvidia-driver': 'ignoreNvidiaDriver',
};

// Python's int(x, 0): decimal without leading zeros, 0x/0o/0b prefixes, optional sign and underscores.
const AUTO_INT =
  /^\s*[+-]?(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|[1-9](?:_?[0-9])*|0(?:_?0)*)\s*$/;

/** Python's `int(text, 0)`, or undefined where Python raises ValueError. */
export function parseAutoInt(text: string): number | undefined {
  if (!AUTO_INT.test(text)) return undefined;
  const clean = text.trim().replaceAll('_', '');
  const negative = clean.startsWith('-');
  const digits = clean.replace(/^[+-]/, '');
  const value = /^0[xob]/i.test(digits) ? Number(digits.toLowerCase()) : Number.parseInt(digits, 10);
  return negative ? -value : value;
}

export function parseGpuToolsArgs(args: readonly string[]): GpuToolsArgs {
  const options: GpuToolsOptions = {
    help: false,
    queryCcMode: false,
    resetAfterCcModeSwitch: false,
    queryPpcieMode: false,
    queryPpcieSettings: false,
    resetAfterPpcieModeSwitch: false,
    resetWithOs: false,
    ignoreNvidiaDriver: false,
  };
  const unrecognized: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    const flag = FLAG_OPTIONS[name];
    if (flag) {
      if (inline !== undefined)
        return fail(`argument ${flagSpelling(name)}: ignored explicit argument ${pythonStrRepr(inline)}`);
      options[flag] = true;
      continue;
    }
    const spec = VALUE_OPTIONS[name];
    if (!spec) {
      unrecognized.push(arg);
      continue;
    }
    let value = inline;
    if (value === undefined) {
      const next = args[i + 1];
      // argparse refuses a following option as the value.
      if (next === undefined || (next.startsWith('-') && next.length > 1 && !/^-\d/.test(next))) {
        return fail(`argument ${name}: expected one argument`);
      }
      value = next;
      i++;
    }
    if (spec.choices && !spec.choices.includes(value)) {
      const choices = spec.choices.map((c) => pythonStrRepr(c)).join(', ');
      return fail(`argument ${name}: invalid choice: ${pythonStrRepr(value)} (choose from ${choices})`);
    }
    switch (spec.key) {
      case 'gpu': {
        const index = parseAutoInt(value);
        if (index === undefined) return fail(`argument --gpu: invalid auto_int value: ${pythonStrRepr(value)}`);
        options.gpu = index;
        break;
      }
      case 'setCcMode':
        options.setCcMode = value as CcModeChoice;
        break;
      case 'setPpcieMode':
        options.setPpcieMode = value as PpcieModeChoice;
        break;
      case 'log':
        break; // accepted; the fake logs at info level whatever is asked
      default:
        options[spec.key] = value;
    }
  }
  if (unrecognized.length > 0) return fail(`unrecognized arguments: ${unrecognized.join(' ')}`);
  return { ok: true, options };
}

function flagSpelling(name: string): string {
  return name === '-h' || name === '--help' ? '-h/--help' : name;
}

function fail(message: string): GpuToolsArgs {
  return { ok: false, error: message };
}
