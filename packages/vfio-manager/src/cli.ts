import {
  addCommonOptions,
  defaultMetricsAddress,
  deviceList,
  type Host,
  jsonText,
  keepExitCodes,
  type Logger,
  mirroredFlag,
  mirroredOption,
  openHost,
  readCommonConfig,
  readOptions,
  runCli,
  stderrLogger,
  terminalProgress,
  usageError,
} from '@gpucc/daemon';
import { Command, Option } from 'commander';
import * as z from 'zod/mini';
import type { ApplyOptions } from './apply.js';
import { bind, exitCodeOf, type RunResult, release, status } from './commands.js';
import { formatPlan, formatReport, formatStatus } from './format.js';
import type { Selection } from './select.js';

export const VERSION = '0.1.0';
export const BINARY = 'vfio-manager';

const selectionSchema = {
  all: z._default(z.boolean(), false),
  device: z.optional(z.union([z.string(), z.array(z.string())])),
  nvswitches: z._default(z.boolean(), true),
};
const applySchema = {
  loadModules: z._default(z.boolean(), false),
  modprobe: z.string().check(z.minLength(1)),
  unbindTimeout: z.coerce.number().check(z.int(), z.positive()),
  deviceNodeTimeout: z.coerce.number().check(z.int(), z.positive()),
  lockTimeout: z.coerce.number().check(z.int(), z.nonnegative()),
};
const output = { output: z.enum(['table', 'json']) };
/** The apply options that neither `plan` nor `unbind` uses: no module is loaded, no node awaited. */
const NO_LOAD_NO_WAIT = { loadModules: false, modprobe: 'modprobe', deviceNodeTimeout: 1 } as const;

function selectionOptions(command: Command): Command {
  return command
    .addOption(mirroredFlag('--all', 'every GPU of the node and its NVSwitches (unless --no-nvswitches)'))
    .addOption(
      mirroredOption('--device <bdf...>', 'these GPUs (dddd:bb:dd.f); comma or space separated in GPUCC_DEVICE'),
    )
    .addOption(nvswitchesFlag())
    .addOption(noNvswitchesFlag());
}

/**
 * NVSwitches are targets by default: a multi-GPU CC pod on HGX needs its switches passed through
 * (kata-containers#13179; deploy/README.md). `--no-nvswitches` is GPUCC_NVSWITCHES=false; it has
 * no variable of its own, so one variable decides.
 */
function nvswitchesFlag(): Option {
  return mirroredFlag(
    '--nvswitches',
    'NVSwitches are targets too (the default; full passthrough, no host Fabric Manager)',
  );
}
function noNvswitchesFlag(): Option {
  return new Option('--no-nvswitches', 'leave NVSwitches alone (GPUCC_NVSWITCHES=false)');
}

/** What `bind` and `run` take: module loading, the unbind deadline, the device-node deadline. */
function applyOptions(command: Command): Command {
  return unbindTimeoutOption(
    command
      .addOption(mirroredFlag('--load-modules', 'load a missing VFIO driver module with modprobe'))
      .addOption(mirroredOption('--modprobe <path>', 'modprobe to run for --load-modules', { default: 'modprobe' })),
  ).addOption(
    mirroredOption('--device-node-timeout <ms>', 'deadline for /dev/vfio nodes to appear after a bind', {
      default: '10000',
    }),
  );
}

/** `unbind` loads no module and waits for no node: the unbind deadline and the lock wait are all it takes. */
function unbindTimeoutOption(command: Command): Command {
  return command
    .addOption(
      mirroredOption('--unbind-timeout <ms>', 'deadline for one unbind (it blocks while the device is in use)', {
        default: '10000',
      }),
    )
    .addOption(
      mirroredOption('--lock-timeout <ms>', 'how long to wait while another vfio-manager changes the devices', {
        default: '30000',
      }),
    );
}

function foreignMembersFlag() {
  return mirroredFlag('--allow-foreign-group-members', 'bind other vendors’ devices that share a GPU’s IOMMU group');
}

function outputOption(command: Command): Command {
  return command.addOption(mirroredOption('--output <format>', 'table or json', { default: 'table' }));
}

function toSelection(o: { all: boolean; device?: string | string[] }): Selection {
  const devices = deviceList(o.device);
  if (o.all && devices.length) throw usageError(BINARY, 'give --all or --device, not both');
  if (!o.all && devices.length === 0) throw usageError(BINARY, 'give --all or --device BDF');
  return o.all ? { all: true } : { devices };
}

/** The opened host (a simulated node's fake modprobe stands in for the host's) and the logger. */
export type Context = Host & { logger: Logger };

/** One-shot commands log to stderr, so stdout holds only the answer (table or JSON). */
async function context(command: Command): Promise<Context> {
  const config = readCommonConfig(command);
  const logger = stderrLogger(BINARY, config);
  const host = await openHost(config.hostRoot, logger);
  return { ...host, logger };
}

export function applyOptionsOf(
  ctx: Context,
  o: z.infer<z.ZodMiniObject<typeof applySchema>>,
  signal?: AbortSignal,
): ApplyOptions {
  const modprobePath = o.modprobe === 'modprobe' ? (ctx.tools?.modprobe ?? o.modprobe) : o.modprobe;
  return {
    logger: ctx.logger,
    loadModules: o.loadModules,
    modprobe: { path: modprobePath },
    unbindTimeoutMs: o.unbindTimeout,
    deviceNodeTimeoutMs: o.deviceNodeTimeout,
    lockTimeoutMs: o.lockTimeout,
    ...(signal ? { signal } : {}),
  };
}

/**
 * On a terminal, one line per group as it goes (on stderr, beside the logs) replaces the per-device
 * info logs unless a log level was asked for; piped, with --output json or a dry run, nothing extra.
 */
function withProgress(
  command: Command,
  ctx: Context,
  o: { output: 'table' | 'json'; dryRun: boolean },
  options: ApplyOptions,
): ApplyOptions {
  if (process.stderr.isTTY !== true || o.output !== 'table' || o.dryRun) return options;
  if (command.getOptionValueSource('logLevel') === 'default') ctx.logger.level = 'warn';
  return { ...options, progress: (groups: number) => terminalProgress(process.stderr, groups) };
}

function program(out: (text: string) => void, exit: { code: number }): Command {
  const cli = new Command(BINARY)
    .description('Bind NVIDIA GPUs, with their whole card and IOMMU group, to VFIO: safely, crash-safe, restorable')
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: (t) => process.stderr.write(t) });

  const plan = new Command('plan').description('print what bind would do, per device, and why');
  addCommonOptions(outputOption(selectionOptions(plan)), { metricsAddress: defaultMetricsAddress(BINARY) })
    .addOption(foreignMembersFlag())
    .action(async (_o, command: Command) => {
      const o = readOptions(
        command,
        z.object({ ...selectionSchema, ...output, allowForeignGroupMembers: z._default(z.boolean(), false) }),
      );
      const selection = toSelection(o); // bad usage is refused before the host is opened
      const ctx = await context(command);
      const result = await bind(
        ctx.sysfs,
        {
          selection,
          nvswitches: o.nvswitches,
          allowForeignGroupMembers: o.allowForeignGroupMembers,
          dryRun: true,
        },
        applyOptionsOf(ctx, { ...NO_LOAD_NO_WAIT, unbindTimeout: 1, lockTimeout: 0 }),
      );
      logDiscovery(ctx.logger, result);
      out(o.output === 'json' ? jsonText(result.plan) : formatPlan(result.plan));
      exit.code = exitCodeOf(result);
    });
  cli.addCommand(plan);

  const bindCmd = new Command('bind').description('bind the selected GPUs, their cards and IOMMU groups to VFIO');
  addCommonOptions(applyOptions(outputOption(selectionOptions(bindCmd))), {
    metricsAddress: defaultMetricsAddress(BINARY),
  })
    .addOption(foreignMembersFlag())
    .addOption(mirroredFlag('--dry-run', 'print the plan, write nothing'))
    .action(async (_o, command: Command) => {
      const o = readOptions(
        command,
        z.object({
          ...selectionSchema,
          ...applySchema,
          ...output,
          allowForeignGroupMembers: z._default(z.boolean(), false),
          dryRun: z._default(z.boolean(), false),
        }),
      );
      const selection = toSelection(o); // bad usage is refused before the host is opened
      const ctx = await context(command);
      const result = await bind(
        ctx.sysfs,
        {
          selection,
          nvswitches: o.nvswitches,
          allowForeignGroupMembers: o.allowForeignGroupMembers,
          dryRun: o.dryRun,
        },
        withProgress(command, ctx, o, applyOptionsOf(ctx, o)),
      );
      logDiscovery(ctx.logger, result);
      printResult(out, o.output, result.plan, result.report);
      exit.code = exitCodeOf(result);
    });
  cli.addCommand(bindCmd);

  const unbind = new Command('unbind').description(
    'release devices from VFIO; with --restore, back to the driver they had before',
  );
  addCommonOptions(unbindTimeoutOption(outputOption(selectionOptions(unbind))), {
    metricsAddress: defaultMetricsAddress(BINARY),
  })
    .addOption(mirroredFlag('--restore', 'bind each device back to the driver recorded at bind time'))
    .addOption(mirroredFlag('--dry-run', 'print the plan, write nothing'))
    .action(async (_o, command: Command) => {
      const o = readOptions(
        command,
        z.object({
          ...selectionSchema,
          unbindTimeout: applySchema.unbindTimeout,
          lockTimeout: applySchema.lockTimeout,
          ...output,
          restore: z._default(z.boolean(), false),
          dryRun: z._default(z.boolean(), false),
        }),
      );
      const selection = toSelection(o); // bad usage is refused before the host is opened
      const ctx = await context(command);
      const result = await release(
        ctx.sysfs,
        { selection, nvswitches: o.nvswitches, restore: o.restore, dryRun: o.dryRun },
        withProgress(
          command,
          ctx,
          o,
          applyOptionsOf(ctx, { ...NO_LOAD_NO_WAIT, unbindTimeout: o.unbindTimeout, lockTimeout: o.lockTimeout }),
        ),
      );
      logDiscovery(ctx.logger, result);
      printResult(out, o.output, result.plan, result.report);
      exit.code = exitCodeOf(result);
    });
  cli.addCommand(unbind);

  const statusCmd = new Command('status').description(
    'every NVIDIA device: driver, group, device node, viability, and whether it is as desired',
  );
  addCommonOptions(outputOption(statusCommandOptions(statusCmd)), {
    metricsAddress: defaultMetricsAddress(BINARY),
  }).action(async (_o, command: Command) => {
    const o = readOptions(
      command,
      z.object({ ...output, desired: z.enum(['vfio', 'none']), nvswitches: z._default(z.boolean(), true) }),
    );
    const ctx = await context(command);
    const report = status(ctx.sysfs, o.desired, {
      selection: { all: true },
      nvswitches: o.nvswitches,
      allowForeignGroupMembers: false,
    });
    out(o.output === 'json' ? jsonText(report) : formatStatus(report));
    exit.code = report.converged ? 0 : 1;
  });
  cli.addCommand(statusCmd);

  const run = new Command('run').description(
    'the DaemonSet/systemd mode: keep every GPU in the desired state; never unbinds on exit',
  );
  addCommonOptions(applyOptions(statusCommandOptions(run)), { metricsAddress: defaultMetricsAddress(BINARY) })
    .addOption(foreignMembersFlag())
    .addOption(
      mirroredOption('--resync-interval <ms>', 'periodic reconcile, so drift and hot-plug are corrected', {
        default: '60000',
      }),
    )
    .action(async (_o, command: Command) => {
      const o = readOptions(
        command,
        z.object({
          ...applySchema,
          desired: z.enum(['vfio', 'none']),
          nvswitches: z._default(z.boolean(), true),
          allowForeignGroupMembers: z._default(z.boolean(), false),
          resyncInterval: z.coerce.number().check(z.int(), z.positive()),
        }),
      );
      const { runDaemon } = await import('./daemon.js'); // the run mode's parts load only here
      exit.code = await runDaemon(command, o);
    });
  cli.addCommand(run);
  return cli;
}

function statusCommandOptions(command: Command): Command {
  return command
    .addOption(mirroredOption('--desired <state>', 'vfio (bound) or none (released)', { default: 'vfio' }))
    .addOption(nvswitchesFlag())
    .addOption(noNvswitchesFlag());
}

/** What discovery could not read: a device skipped (problem) or an attribute left unknown (warning). */
function logDiscovery(logger: Logger, result: RunResult): void {
  const { problems, warnings } = result.observation.topology;
  for (const problem of problems)
    logger.warn({ event: 'discovery.problem', err: problem.toJSON() }, `not acted on: ${problem.message}`);
  for (const warning of warnings) logger.warn({ event: 'discovery.warning', err: warning.toJSON() }, warning.message);
}

function printResult(
  out: (t: string) => void,
  format: string,
  plan: Parameters<typeof formatPlan>[0],
  report: Parameters<typeof formatReport>[0] | undefined,
) {
  if (format === 'json') {
    out(jsonText(report ? { plan, report } : { plan }));
    return;
  }
  out(report ? formatReport(report) : formatPlan(plan));
}

/** Runs the CLI; returns the exit code: 0 converged, 1 something could not be done, 2 bad usage or input. */
export function main(argv: string[], out: (text: string) => void = (t) => process.stdout.write(t)): Promise<number> {
  const exit = { code: 0 };
  return runCli(BINARY, keepExitCodes(program(out, exit), out), argv, exit, INPUT_ERRORS);
}

/** Errors in what the user gave us: exit 2, nothing was written. */
const INPUT_ERRORS = new Set([
  'ERR_GPUCC_INVALID_PCI_ADDRESS',
  'ERR_GPUCC_DEVICE_NOT_FOUND',
  'ERR_GPUCC_NOT_A_TARGET',
  'ERR_GPUCC_BEHIND_VMD',
]);
