import { endQuietlyWhenStdoutCloses, isGpuccError } from '@gpucc/hal';
import { type Command, CommanderError } from 'commander';

export type Output = (text: string) => void;

/** The exit code a command sets as it runs (0 converged, 1 something could not be done). */
export interface CliExit {
  code: number;
}

/** Errors in what the user gave every binary: exit 2, nothing was done. Binaries add their own. */
const COMMON_INPUT_ERRORS = [
  'ERR_GPUCC_USAGE',
  'ERR_GPUCC_INVALID_CONFIG',
  'ERR_GPUCC_HOST_ROOT_INVALID',
  'ERR_GPUCC_SIMULATOR_NOT_ATTACHED',
  'ERR_GPUCC_PCI_IDS_UNREADABLE', // --pci-ids (addPciIdsOption)
];

/**
 * Commander exits the process by itself unless told not to, and commands made with `new Command`
 * do not inherit that setting: apply it to the program and every subcommand.
 */
export function keepExitCodes(program: Command, out: Output): Command {
  for (const command of [program, ...program.commands]) {
    command.exitOverride().configureOutput({ writeOut: out, writeErr: (t) => process.stderr.write(t) });
  }
  return program;
}

/**
 * Runs a binary's program and returns its exit code: what the command set (0 or 1), 2 for bad usage or
 * input, 1 for any other failure. Errors are printed once, as code, message and hint.
 */
export async function runCli(
  binary: string,
  program: Command,
  argv: string[],
  exit: CliExit,
  inputErrors: Iterable<string> = [],
): Promise<number> {
  const input = new Set([...COMMON_INPUT_ERRORS, ...inputErrors]);
  endQuietlyWhenStdoutCloses();
  try {
    await program.parseAsync(argv);
    return exit.code;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (isGpuccError(error)) {
      process.stderr.write(`${binary}: ${error.describe()}\n`);
      return input.has(error.code) ? 2 : 1;
    }
    process.stderr.write(`${binary}: unexpected error: ${(error as Error).stack ?? String(error)}\n`);
    return 1;
  }
}
