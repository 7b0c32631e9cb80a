import path from 'node:path';
import {
  addAliasOptions,
  addCommonOptions,
  addPciIdsOption,
  addVfioDeviceModelOption,
  aliasesOf,
  aliasSchema,
  defaultMetricsAddress,
  jsonText,
  keepExitCodes,
  type Logger,
  mirroredFlag,
  mirroredOption,
  openHost,
  readCommonConfig,
  readOptions,
  readPciIdsSource,
  runCli,
  stderrLogger,
  usageError,
  vfioDeviceModelSchema,
} from '@gpucc/daemon';
import {
  GpuccError,
  HostRoot,
  type NameAliases,
  type PciIdsSource,
  parseCdiKind,
  type VfioDeviceModelSetting,
} from '@gpucc/hal';
import { Command } from 'commander';
import * as z from 'zod/mini';
import { DEFAULT_CDI_DIR, exitCodeOf, type Generated, generate, hostDir, write } from './commands.js';
import { formatWriteResult } from './format.js';
import { logGenerated, logWriteResult } from './log.js';
import { writeResultJson } from './report.js';

export const VERSION = '0.1.0';
export const BINARY = 'kata-manager';

// ---- options -------------------------------------------------------------------------------------

function cdiDirOption(command: Command): Command {
  return command.addOption(
    mirroredOption('--cdi-dir <dir>', 'CDI spec directory on the host (under --host-root): /var/run/cdi or /etc/cdi', {
      default: DEFAULT_CDI_DIR,
    }),
  );
}

const cdiDirSchema = {
  cdiDir: z.string().check(
    z.refine((dir) => path.posix.isAbsolute(dir), 'must be an absolute host path, e.g. /var/run/cdi or /etc/cdi'),
    z.refine((dir) => !dir.split('/').includes('..'), 'must not contain ..'),
    z.refine((dir) => hostDir(dir) !== '', 'must not be the host root itself'),
  ),
};

// ---- one-shot commands ---------------------------------------------------------------------------

interface Context {
  sysfs: HostRoot;
  logger: Logger;
}

/** One-shot commands log to stderr, so stdout holds only the answer. */
async function context(command: Command): Promise<Context> {
  const config = readCommonConfig(command);
  const logger = stderrLogger(BINARY, config);
  const host = await openHost(config.hostRoot, logger);
  return { sysfs: host.sysfs, logger };
}

interface GenerateCli {
  output: string;
  format?: 'yaml' | 'json' | undefined;
  kind?: string | undefined;
}

async function runGenerate(
  command: Command,
  o: GenerateCli,
  naming: { aliases: NameAliases; pciIds: PciIdsSource; deviceModel: VfioDeviceModelSetting },
  out: (t: string) => void,
) {
  const toFile = o.output !== '-';
  // An unset format follows the file name: `--output spec.json` writes JSON.
  const format = o.format ?? (toFile && o.output.endsWith('.json') ? 'json' : 'yaml');
  const ctx = await context(command);
  const generated = generate(ctx.sysfs, naming, format);
  logGenerated(ctx.logger, generated);
  const specs = generated.specs.filter((s) => o.kind === undefined || s.kind === o.kind);
  const refused = specs.filter((s) => s.error);
  for (const s of refused) ctx.logger.error({ event: 'spec.refused', kind: s.kind, err: s.error }, s.error!.message);
  const texts = specs.flatMap((s) => (s.text === undefined ? [] : [s.text]));
  const failed = refused.length > 0 || generated.selection.skipped.some((s) => s.error);

  if (toFile || o.kind !== undefined) {
    if (specs.length === 0) throw noDevices(generated, o.kind);
    if (specs.length > 1) {
      throw usageError(
        BINARY,
        `${specs.length} specs (${specs.map((s) => s.kind).join(', ')}), and a CDI file holds one: add --kind, or use \`${BINARY} write\``,
      );
    }
  }
  if (toFile) {
    if (texts.length === 0) return 1; // its refusal is logged; nothing is written
    const file = path.resolve(o.output);
    await new HostRoot('/').writeFileAtomic(file, texts[0]!, 0o644);
    ctx.logger.info({ event: 'spec.written', file, kind: specs[0]!.kind }, `wrote ${file}`);
  } else if (format === 'json') {
    // One spec prints as a loadable CDI file; several as an array of them.
    const array = specs.flatMap((s) => (s.text === undefined ? [] : [s.spec]));
    out(texts.length === 1 ? texts[0]! : jsonText(array));
  } else {
    out(texts.join('---\n'));
  }
  if (specs.length === 0) ctx.logger.warn({ event: 'spec.none' }, 'no VFIO-bound GPU or NVSwitch: no spec to print');
  return failed ? 1 : 0;
}

function noDevices(generated: Generated, kind: string | undefined): GpuccError {
  const kinds = [...new Set(generated.specs.map((s) => s.kind))];
  const what = kind === undefined ? 'no VFIO-bound GPU or NVSwitch' : `no VFIO-bound device of kind ${kind}`;
  return new GpuccError(
    'ERR_GPUCC_CDI_NO_DEVICES',
    `${what} with its device node: a CDI spec needs one device at least`,
    {
      hint: kinds.length
        ? `kinds on this node: ${kinds.join(', ')}`
        : 'bind the GPUs to VFIO first (vfio-manager bind --all) and check /dev/vfio',
      details: { kind, kinds },
    },
  );
}

// ---- the program ---------------------------------------------------------------------------------

function program(out: (text: string) => void, exit: { code: number }): Command {
  const cli = new Command(BINARY)
    .description(
      'Host-side CDI specs for the GPUs and NVSwitches passed through with VFIO: always true, written atomically',
    )
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: (t) => process.stderr.write(t) });
  const common = (command: Command) =>
    addCommonOptions(addVfioDeviceModelOption(addPciIdsOption(addAliasOptions(command))), {
      metricsAddress: defaultMetricsAddress(BINARY),
    });

  const generateCmd = new Command('generate').description('print the CDI spec(s) the host needs now; writes nothing');
  common(generateCmd)
    .addOption(mirroredOption('--output <file>', '- (stdout) or a file, replaced atomically', { default: '-' }))
    .addOption(mirroredOption('--format <format>', 'yaml or json (default: json for a *.json file, else yaml)'))
    .addOption(mirroredOption('--kind <kind>', 'only the spec of this kind, e.g. nvidia.com/pgpu'))
    .action(async (_o, command: Command) => {
      const o = readOptions(
        command,
        z.object({
          ...aliasSchema,
          ...vfioDeviceModelSchema,
          output: z.string().check(z.minLength(1, 'must not be empty')),
          format: z.optional(z.enum(['yaml', 'json'])),
          kind: z
            .optional(z.string())
            .check(
              z.refine((k) => k === undefined || isKind(k), 'must be a CDI kind vendor/class, e.g. nvidia.com/pgpu'),
            ),
        }),
      );
      const naming = { aliases: aliasesOf(o), pciIds: readPciIdsSource(command), deviceModel: o.vfioDeviceModel };
      exit.code = await runGenerate(command, o, naming, out);
    });
  cli.addCommand(generateCmd);

  const writeCmd = new Command('write').description(
    'write the CDI spec(s) into the CDI directory, remove our stale ones, and exit',
  );
  cdiDirOption(common(writeCmd))
    .addOption(mirroredFlag('--dry-run', 'print what would be written or removed, write nothing'))
    // Not --format: GPUCC_FORMAT is generate's spec format (yaml|json); one variable, one meaning.
    .addOption(mirroredOption('--report <format>', 'report as table or json', { default: 'table' }))
    .action(async (_o, command: Command) => {
      const o = readOptions(
        command,
        z.object({
          ...aliasSchema,
          ...vfioDeviceModelSchema,
          ...cdiDirSchema,
          dryRun: z._default(z.boolean(), false),
          report: z.enum(['table', 'json']),
        }),
      );
      const pciIds = readPciIdsSource(command);
      const aliases = aliasesOf(o); // refuses GPUs and NVSwitches under one name before the host is read
      const ctx = await context(command);
      const result = await write(ctx.sysfs, {
        aliases,
        pciIds,
        deviceModel: o.vfioDeviceModel,
        cdiDir: o.cdiDir,
        dryRun: o.dryRun,
      });
      if (o.dryRun) logGenerated(ctx.logger, result.generated);
      else logWriteResult(ctx.logger, result);
      out(o.report === 'json' ? `${JSON.stringify(writeResultJson(result), null, 2)}\n` : formatWriteResult(result));
      exit.code = exitCodeOf(result);
    });
  cli.addCommand(writeCmd);

  const run = new Command('run').description(
    'the DaemonSet/systemd mode: write the specs, keep them true as devices are bound, unbound or vanish; specs stay on exit',
  );
  cdiDirOption(common(run))
    .addOption(
      mirroredOption('--resync-interval <ms>', 'periodic full reconcile, besides the change events', {
        default: '30000',
      }),
    )
    .action(async (_o, command: Command) => {
      const o = readOptions(
        command,
        z.object({
          ...aliasSchema,
          ...vfioDeviceModelSchema,
          ...cdiDirSchema,
          resyncInterval: z.coerce.number().check(z.int(), z.positive()),
        }),
      );
      const { runDaemon } = await import('./daemon.js'); // the run mode's parts load only here
      exit.code = await runDaemon(command, {
        aliases: aliasesOf(o),
        pciIds: readPciIdsSource(command),
        deviceModel: o.vfioDeviceModel,
        cdiDir: o.cdiDir,
        resyncMs: o.resyncInterval,
      });
    });
  cli.addCommand(run);

  return cli;
}

function isKind(kind: string): boolean {
  try {
    parseCdiKind(kind);
    return true;
  } catch {
    return false;
  }
}

/** Runs the CLI; returns the exit code: 0 every spec true, 1 something failed, 2 bad usage or input. */
export function main(argv: string[], out: (text: string) => void = (t) => process.stdout.write(t)): Promise<number> {
  const exit = { code: 0 };
  return runCli(BINARY, keepExitCodes(program(out, exit), out), argv, exit, INPUT_ERRORS);
}

/** Errors in what the user gave us: exit 2, nothing was written. */
const INPUT_ERRORS = new Set(['ERR_GPUCC_INVALID_RESOURCE_NAME']);
