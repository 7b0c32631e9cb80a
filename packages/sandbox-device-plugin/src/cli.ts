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
  mirroredFlag,
  mirroredOption,
  openHost,
  readCommonConfig,
  readOptions,
  readPciIdsSource,
  runCli,
  stderrLogger,
  vfioDeviceModelSchema,
} from '@gpucc/daemon';
import type { PciIdsSource, VfioDeviceModelSetting } from '@gpucc/hal';
import { Command, Option } from 'commander';
import * as z from 'zod/mini';
import { formatList, listReport } from './list.js';
import type { PluginSettings } from './settings.js';
import { TOPOLOGY_POLICIES, type TopologyPolicy } from './topology.js';

export const BINARY = 'sandbox-device-plugin';
export const VERSION = '0.1.0';

function deviceOptions(command: Command): Command {
  // NVSwitches by default: a multi-GPU CC pod on HGX needs its switches too (kata-containers#13179).
  // `--no-nvswitches` is GPUCC_NVSWITCHES=false; it has no variable of its own, so one variable decides.
  return addVfioDeviceModelOption(addPciIdsOption(addAliasOptions(command)))
    .addOption(mirroredFlag('--nvswitches', 'advertise VFIO-bound NVSwitches (as nvidia.com/nvswitch; the default)'))
    .addOption(new Option('--no-nvswitches', 'advertise GPUs only (GPUCC_NVSWITCHES=false)'))
    .addOption(
      mirroredOption(
        '--cc-topology <policy>',
        'enforce: refuse GPU sets a confidential VM cannot boot with in the node CC mode; warn: log and allocate',
        { default: 'enforce' },
      ),
    );
}

const deviceSchema = {
  nvswitches: z._default(z.boolean(), true),
  ccTopology: z.enum(TOPOLOGY_POLICIES),
  ...aliasSchema,
  ...vfioDeviceModelSchema,
};

function settingsOf(
  o: {
    nvswitches: boolean;
    ccTopology: TopologyPolicy;
    vfioDeviceModel: VfioDeviceModelSetting;
    gpuAlias?: string;
    nvswitchAlias?: string;
  },
  pciIds: PciIdsSource,
  cdiDevices = false,
) {
  // aliasesOf refuses GPUs and NVSwitches under one name, the same way for kata-manager
  const settings: PluginSettings = {
    nvswitches: o.nvswitches,
    aliases: aliasesOf(o),
    deviceModel: o.vfioDeviceModel,
    cdiDevices,
    pciIds,
    ccTopology: o.ccTopology,
  };
  return settings;
}

function program(out: (text: string) => void, exit: { code: number }): Command {
  const cli = new Command(BINARY)
    .description('The kubelet device plugin for VFIO-bound NVIDIA GPUs and NVSwitches (Kata, Confidential Containers)')
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: (t) => process.stderr.write(t) });

  const list = new Command('list').description('print the resources and devices the plugin would advertise now');
  addCommonOptions(deviceOptions(list), { metricsAddress: defaultMetricsAddress(BINARY) })
    .addOption(mirroredOption('--output <format>', 'table or json', { default: 'table' }))
    .action(async (_o, command: Command) => {
      const o = readOptions(command, z.object({ ...deviceSchema, output: z.enum(['table', 'json']) }));
      const settings = settingsOf(o, readPciIdsSource(command));
      const config = readCommonConfig(command);
      const logger = stderrLogger(BINARY, config);
      const { sysfs } = await openHost(config.hostRoot, logger);
      const report = listReport(sysfs, settings);
      for (const problem of report.problems)
        logger.warn({ event: 'discovery.problem', problem }, String(problem.message));
      out(o.output === 'json' ? jsonText(report) : formatList(report));
    });
  cli.addCommand(list);

  const run = new Command('run').description(
    'serve the kubelet: one gRPC server per resource, registered, kept in step with the devices',
  );
  addCommonOptions(deviceOptions(run), { metricsAddress: defaultMetricsAddress(BINARY) })
    .addOption(
      mirroredFlag(
        '--cdi-devices',
        'also name allocated devices in cdi_devices (nvidia.com/pgpu=<id>) for CDI runtimes',
      ),
    )
    .addOption(
      mirroredOption('--resync-interval <ms>', 'periodic rediscovery and registration check', { default: '10000' }),
    )
    .action(async (_o, command: Command) => {
      const o = readOptions(
        command,
        z.object({
          ...deviceSchema,
          cdiDevices: z._default(z.boolean(), false),
          resyncInterval: z.coerce.number().check(z.int(), z.minimum(100)),
        }),
      );
      const settings = settingsOf(o, readPciIdsSource(command), o.cdiDevices);
      const config = readCommonConfig(command);
      const { runDaemon } = await import('./daemon.js'); // grpc and the health server load only here
      exit.code = await runDaemon(config, settings, o.resyncInterval);
    });
  cli.addCommand(run);

  return cli;
}

/** Runs the CLI; returns the exit code: 0 ok (and after SIGTERM), 1 failure, 2 bad usage or input. */
export function main(argv: string[], out: (text: string) => void = (t) => process.stdout.write(t)): Promise<number> {
  const exit = { code: 0 };
  return runCli(BINARY, keepExitCodes(program(out, exit), out), argv, exit, INPUT_ERRORS);
}

/** Errors in what the user gave us: exit 2, nothing was served. */
const INPUT_ERRORS = new Set(['ERR_GPUCC_INVALID_RESOURCE_NAME']);
