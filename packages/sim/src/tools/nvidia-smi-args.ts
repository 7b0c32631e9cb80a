/**
 * The fake host `nvidia-smi`'s command line: `conf-compute` with exactly one query command
 * (docs/facts/cc-tools.md#nvidia-smi-conf-compute), and `--query-gpu=… --format=csv[,noheader][,nounits]`. There is
 * no flag that switches a CC mode, on purpose: the real tool has none either.
 */

export type ConfComputeCommand = 'gc' | 'gg' | 'd' | 'e' | 'f' | 'grs' | 'mgm' | 'q';

export type SmiArgs =
  | { kind: 'help' }
  | { kind: 'conf-compute-help' }
  | { kind: 'conf-compute'; command: ConfComputeCommand; ids?: string[] }
  | { kind: 'query-gpu'; fields: string[]; header: boolean; ids?: string[] }
  | { kind: 'usage-error'; message: string };

const CONF_COMPUTE_COMMANDS: Readonly<Record<string, ConfComputeCommand>> = {
  '-gc': 'gc',
  '--get-cpu-caps': 'gc',
  '-gg': 'gg',
  '--get-gpus-caps': 'gg',
  '-d': 'd',
  '--get-devtools-mode': 'd',
  '-e': 'e',
  '--get-environment': 'e',
  '-f': 'f',
  '--get-cc-feature': 'f',
  '-grs': 'grs',
  '--get-gpus-ready-state': 'grs',
  '-mgm': 'mgm',
  '--get-multigpu-mode': 'mgm',
  '-q': 'q',
};

export const ONE_COMMAND_ONLY = 'One, and only one, conf-compute command allowed at a time';
const TOP_USAGE_ERROR = "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.";
const CC_USAGE_ERROR = "Invalid combination of input arguments. Please run 'nvidia-smi conf-compute -h' for help.";

export function parseNvidiaSmiArgs(args: readonly string[]): SmiArgs {
  if (args[0] === 'conf-compute') return parseConfCompute(args.slice(1));
  let fields: string[] | undefined;
  let format: string | undefined;
  let ids: string[] | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '-h' || arg === '--help') return { kind: 'help' };
    const [name, inline] = splitOption(arg);
    const value = inline ?? (['--query-gpu', '--format', '-i', '--id'].includes(name) ? args[++i] : undefined);
    if (name === '--query-gpu' && value) fields = value.split(',').map((f) => f.trim());
    else if (name === '--format' && value) format = value;
    else if ((name === '-i' || name === '--id') && value) ids = value.split(',');
    else return { kind: 'usage-error', message: TOP_USAGE_ERROR };
  }
  if (!fields) return { kind: 'usage-error', message: TOP_USAGE_ERROR };
  const formats = (format ?? 'csv').split(',');
  if (formats[0] !== 'csv' || formats.some((f) => !['csv', 'noheader', 'nounits'].includes(f))) {
    return { kind: 'usage-error', message: `"${format}" is not a valid format.` };
  }
  return { kind: 'query-gpu', fields, header: !formats.includes('noheader'), ...(ids ? { ids } : {}) };
}

function parseConfCompute(args: readonly string[]): SmiArgs {
  const commands: ConfComputeCommand[] = [];
  let ids: string[] | undefined;
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const [name, inline] = splitOption(args[i]!);
    if (name === '-h' || name === '--help') {
      help = true;
      continue;
    }
    if (name === '-i' || name === '--id') {
      const value = inline ?? args[++i];
      if (!value) return { kind: 'usage-error', message: CC_USAGE_ERROR };
      ids = value.split(',');
      continue;
    }
    const command = CONF_COMPUTE_COMMANDS[name];
    if (!command || inline !== undefined) return { kind: 'usage-error', message: CC_USAGE_ERROR };
    commands.push(command);
  }
  if (help) return { kind: 'conf-compute-help' };
  if (commands.length > 1) return { kind: 'usage-error', message: ONE_COMMAND_ONLY };
  const command = commands[0];
  if (!command) return { kind: 'conf-compute-help' };
  return { kind: 'conf-compute', command, ...(ids ? { ids } : {}) };
}

function splitOption(arg: string): [string, string | undefined] {
  const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
  return eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, undefined];
}

export const NVIDIA_SMI_HELP = `NVIDIA System Management Interface -- (gpucc-sim fake: conf-compute and --query-gpu only)

    nvidia-smi [OPTION1 [ARG1]] [OPTION2 [ARG2]] ...

    -h,   --help                Print usage information and exit.

  SELECTIVE QUERY OPTIONS:

    -i,   --id=                 Target a specific GPU.
    --query-gpu=                Information about GPU (driver_version, pci.bus_id, index, count).
    --format=                   Comma separated list of format options: csv, noheader, nounits.

  SUBCOMMANDS:

    conf-compute                Control and query confidential compute.
`;

export const CONF_COMPUTE_HELP = `conf-compute -- Control and query confidential compute.

Usage: nvidia-smi conf-compute [options]

Options include:
    [-h | --help]: Display help information
    [-i | --id]: Enumeration index, PCI bus ID or UUID.
                 Provide comma separated values for more than one device
    [-gc | --get-cpu-caps]: Get Confidential Compute CPU capability
    [-gg | --get-gpus-caps]: Get Confidential Compute GPUs capability
    [-d | --get-devtools-mode]: Get Confidential Compute DevTools mode
    [-e | --get-environment]: Get Confidential Compute environment
    [-f | --get-cc-feature]: Get Confidential Compute CC feature mode
    [-grs | --get-gpus-ready-state]: Get Confidential Compute GPUs ready state
    [-mgm | --get-multigpu-mode]: Get Confidential Compute multi-GPU mode
    [-q]: Display Confidential Compute summary
`;
