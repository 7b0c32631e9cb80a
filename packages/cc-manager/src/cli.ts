import {
  addCommonOptions,
  addPciIdsOption,
  defaultMetricsAddress,
  deviceList,
  jsonText,
  keepExitCodes,
  mirroredFlag,
  mirroredOption,
  openHost,
  parseBooleanWord,
  parsedString,
  readCommonConfig,
  readOptions,
  runCli,
  stderrLogger,
  terminalProgress,
  usageError,
} from '@gpucc/daemon';
import { CC_MODES, GpuccError, PLUGIN_SOCKET_PREFIX, parseCcMode } from '@gpucc/hal';
import { Command } from 'commander';
import * as z from 'zod/mini';
import { BACKENDS } from './backend/backend.js';
import { gpuAdminToolsBackend } from './backend/gpu-admin-tools.js';
import {
  DEFAULT_GPU_ADMIN_TOOLS,
  DEFAULT_NVIDIA_SMI,
  findExecutable,
  selectBackendFor,
  toolPaths,
} from './backend/select.js';
import { capabilityTable } from './capability.js';
import { setMode, status } from './commands.js';
import type { Context } from './context.js';
import { DEFAULT_MODES } from './desired.js';
import { doctor, exitCodeOf, formatDoctor } from './doctor/index.js';
import { formatPlan, formatReport, formatStatus } from './format.js';
import { ABSENT_MEANINGS, OPERAND_LABELS, parseOperandLabelKeys } from './operands.js';
import { isConverged } from './plan.js';

export const BINARY = 'cc-manager';
export const VERSION = '0.1.0';

const booleanWord = parsedString(parseBooleanWord, 'expected true or false');

const backendSchema = {
  backend: z.enum(BACKENDS),
  gpuAdminTools: z.string().check(z.minLength(1)),
  python: z.optional(z.string().check(z.minLength(1))),
  nvidiaSmi: z.string().check(z.minLength(1)),
  toolTimeout: z.coerce.number().check(z.int(), z.positive()),
  maxParallel: z.coerce.number().check(z.int(), z.minimum(1), z.maximum(256)),
  ccCapableIds: z.optional(z.string()),
  ppcieCapableIds: z.optional(z.string()),
};
const output = { output: z.enum(['table', 'json']) };

function backendOptions(command: Command): Command {
  return command
    .addOption(
      mirroredOption(
        '--backend <name>',
        `CC tool backend: ${BACKENDS.join(', ')} (auto: gpu-admin-tools when installed)`,
        { default: 'auto' },
      ),
    )
    .addOption(
      mirroredOption(
        '--gpu-admin-tools <path>',
        'nvidia_gpu_tools.py of gpu-admin-tools (on a simulated node: its fake)',
        {
          default: DEFAULT_GPU_ADMIN_TOOLS,
        },
      ),
    )
    .addOption(
      mirroredOption('--python <path>', 'run nvidia_gpu_tools.py with this interpreter (default: run it directly)'),
    )
    .addOption(
      mirroredOption('--nvidia-smi <path>', 'nvidia-smi, for the read-only backend (on a simulated node: its fake)', {
        default: DEFAULT_NVIDIA_SMI,
      }),
    )
    .addOption(
      mirroredOption(
        '--tool-timeout <ms>',
        'deadline of one tool call (set, reset, boot wait); a hung tool is killed',
        { default: '60000' },
      ),
    )
    .addOption(mirroredOption('--max-parallel <n>', 'tool calls, hence device resets, at once', { default: '16' }))
    .addOption(
      mirroredOption(
        '--cc-capable-ids <ids>',
        'GPU device IDs with a CC mode, replacing the built-in Hopper and Blackwell ranges (e.g. 0x2330,0x2900-0x297f)',
      ),
    )
    .addOption(
      mirroredOption(
        '--ppcie-capable-ids <ids>',
        'GPU and NVSwitch device IDs with PPCIe, replacing the built-in Hopper and NVSwitch gen3 ones',
      ),
    );
}

async function contextFor(command: Command, o: z.infer<z.ZodMiniObject<typeof backendSchema>>): Promise<Context> {
  const config = readCommonConfig(command);
  const logger = stderrLogger(BINARY, config);
  const capability = capabilityTable({ cc: o.ccCapableIds, ppcie: o.ppcieCapableIds });
  const host = await openHost(config.hostRoot, logger);
  const backend = selectBackendFor(o, logger, host);
  return { sysfs: host.sysfs, backend, capability, logger, maxParallel: o.maxParallel };
}

function program(out: (text: string) => void, exit: { code: number }): Command {
  const cli = new Command(BINARY)
    .description(
      'Put every CC-capable NVIDIA GPU (and NVSwitch, for ppcie) into the confidential-computing mode asked for',
    )
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: (t) => process.stderr.write(t) });
  const metricsAddress = defaultMetricsAddress(BINARY);

  const statusCmd = new Command('status').description(
    'host TEE, and every GPU and NVSwitch: CC capability, CC mode, PPCIe mode, mode pending after reset',
  );
  addCommonOptions(backendOptions(statusCmd), { metricsAddress })
    .addOption(mirroredOption('--output <format>', 'table or json', { default: 'table' }))
    .action(async (_o, command: Command) => {
      const o = readOptions(command, z.object({ ...backendSchema, ...output }));
      const report = await status(await contextFor(command, o));
      out(o.output === 'json' ? jsonText(report) : formatStatus(report));
      exit.code = report.devices.some((d) => d.error) ? 1 : 0;
    });
  cli.addCommand(statusCmd);

  const doctorCmd = new Command('doctor').description(
    'check the host for CC with GPUs (TEE, IOMMU, VFIO, GPU capability and firmware, pci.ids, kubelet and CDI dirs); exit 1 when it cannot run CC workloads',
  );
  addCommonOptions(addPciIdsOption(doctorCmd), { metricsAddress })
    .addOption(mirroredOption('--mode <mode>', `the CC mode to check for: ${CC_MODES.join(', ')}`, { default: 'on' }))
    .addOption(
      mirroredOption(
        '--nfd-features-file <path>',
        'also write the CC features as an NFD local feature file, e.g. /etc/kubernetes/node-feature-discovery/features.d/gpucc',
      ),
    )
    .addOption(
      mirroredFlag(
        '--force',
        'write --nfd-features-file even outside a features.d/ directory or over a file the doctor did not write',
      ),
    )
    .addOption(mirroredOption('--cc-capable-ids <ids>', 'GPU device IDs with a CC mode, replacing the built-in ranges'))
    .addOption(
      mirroredOption(
        '--ppcie-capable-ids <ids>',
        'GPU and NVSwitch device IDs with PPCIe, replacing the built-in ones',
      ),
    )
    .addOption(
      mirroredOption(
        '--gpu-admin-tools <path>',
        'nvidia_gpu_tools.py, for the firmware check (read-only queries; on a simulated node: its fake)',
        { default: DEFAULT_GPU_ADMIN_TOOLS },
      ),
    )
    .addOption(
      mirroredOption('--python <path>', 'run nvidia_gpu_tools.py with this interpreter (default: run it directly)'),
    )
    .addOption(
      mirroredOption('--tool-timeout <ms>', 'deadline of the firmware check: all its tool calls together', {
        default: '30000',
      }),
    )
    .addOption(mirroredOption('--max-parallel <n>', 'tool calls at once', { default: '16' }))
    .addOption(mirroredOption('--output <format>', 'table or json', { default: 'table' }))
    .action(async (_o, command: Command) => {
      const o = readOptions(
        command,
        z.object({
          ...output,
          gpuAdminTools: backendSchema.gpuAdminTools,
          python: backendSchema.python,
          toolTimeout: backendSchema.toolTimeout,
          maxParallel: backendSchema.maxParallel,
          pciIds: z.optional(z.string()),
          mode: z.enum(CC_MODES),
          nfdFeaturesFile: z.optional(
            z
              .string()
              .check(z.refine((f) => f.startsWith('/') && !f.endsWith('/'), 'must be an absolute host file path')),
          ),
          ccCapableIds: z.optional(z.string()),
          ppcieCapableIds: z.optional(z.string()),
          force: z._default(z.boolean(), false),
        }),
      );
      const capability = capabilityTable({ cc: o.ccCapableIds, ppcie: o.ppcieCapableIds });
      const config = readCommonConfig(command);
      const logger = stderrLogger(BINARY, config);
      const host = await openHost(config.hostRoot, logger);
      // gpu-admin-tools only: it is the tool that tells firmware support (nvidia-smi needs the host driver).
      const script = toolPaths({
        gpuAdminTools: o.gpuAdminTools,
        nvidiaSmi: DEFAULT_NVIDIA_SMI,
        ...(host.tools ? { simulatedTools: host.tools } : {}),
      }).gpuAdminTools;
      const backend = gpuAdminToolsBackend({
        script,
        ...(o.python ? { python: o.python } : {}),
        timeoutMs: o.toolTimeout,
        maxParallel: o.maxParallel,
        logger,
      });
      const pciIds = o.pciIds?.trim();
      const report = await doctor(host.sysfs, {
        mode: o.mode,
        capability,
        tools: { backend, tool: script, found: findExecutable(script) !== undefined, deadlineMs: o.toolTimeout },
        ...(pciIds ? { pciIdsFallback: pciIds } : {}),
        ...(o.nfdFeaturesFile ? { nfdFeaturesFile: o.nfdFeaturesFile, force: o.force } : {}),
      });
      out(o.output === 'json' ? jsonText(report) : formatDoctor(report));
      exit.code = exitCodeOf(report);
    });
  cli.addCommand(doctorCmd);

  const set = new Command('set')
    .description('switch every GPU (or --device) to MODE now, without Kubernetes: set, reset together, verify')
    .argument('<mode>', 'on, off, devtools or ppcie');
  addCommonOptions(backendOptions(set), { metricsAddress })
    .addOption(
      mirroredOption(
        '--device <bdf...>',
        'only these GPUs or NVSwitches (dddd:bb:dd.f); comma or space separated in GPUCC_DEVICE',
      ),
    )
    .addOption(mirroredFlag('--dry-run', 'print the plan, touch nothing'))
    .addOption(mirroredOption('--output <format>', 'table or json', { default: 'table' }))
    .action(async (modeArg: string, _o, command: Command) => {
      const mode = parseCcMode(modeArg);
      const o = readOptions(
        command,
        z.object({
          ...backendSchema,
          ...output,
          device: z.optional(z.union([z.string(), z.array(z.string())])),
          dryRun: z._default(z.boolean(), false),
        }),
      );
      const devices = deviceList(o.device);
      if (o.device !== undefined && devices.length === 0)
        throw usageError(BINARY, '--device needs at least one address');
      const engine = await contextFor(command, o);
      if (!o.dryRun && !engine.backend.canSwitch) {
        throw new GpuccError(
          'ERR_GPUCC_CC_BACKEND_CANNOT_SWITCH',
          `${engine.backend.name} can read the CC mode but never switch it`,
          {
            hint: 'install gpu-admin-tools and use --backend gpu-admin-tools (or auto), with --gpu-admin-tools PATH',
          },
        );
      }
      // On a terminal, one line per device as it goes replaces the per-device info logs (unless a
      // log level was asked for); piped or with --output json, nothing extra.
      const showProgress = process.stderr.isTTY === true && o.output !== 'json' && !o.dryRun;
      if (showProgress && command.getOptionValueSource('logLevel') === 'default') engine.logger.level = 'warn';
      const result = await setMode(engine, {
        mode,
        ...(devices.length ? { devices } : {}),
        dryRun: o.dryRun,
        ...(showProgress ? { progress: (steps: number) => terminalProgress(process.stderr, steps) } : {}),
      });
      if (o.output === 'json') {
        out(jsonText(result.report ? { plan: result.plan, report: result.report } : { plan: result.plan }));
      } else out(result.report ? formatReport(result.report) : formatPlan(result.plan));
      if (result.report) exit.code = result.report.ok ? 0 : 1;
      else
        exit.code =
          result.plan.refusal ||
          result.plan.devices.some((d) => d.decision === 'refused' || d.decision === 'unreadable')
            ? 1
            : 0;
      if (!result.report && isConverged(result.plan)) engine.logger.debug({ event: 'cc.plan.empty' }, 'nothing to do');
    });
  cli.addCommand(set);

  const run = new Command('run').description(
    'the DaemonSet/systemd mode: keep the node in the mode of its nvidia.com/cc.mode label; state labels, Events, /healthz /readyz /metrics',
  );
  addCommonOptions(backendOptions(run), { metricsAddress })
    .addOption(
      mirroredOption('--node-name <name>', 'this node’s Kubernetes name (downward API spec.nodeName)', {
        env: 'NODE_NAME',
      }),
    )
    .addOption(
      mirroredOption('--kubeconfig <file>', 'kubeconfig to use outside a pod (in a pod: the service account)', {
        env: 'KUBECONFIG',
      }),
    )
    .addOption(
      mirroredOption(
        '--default-mode <mode>',
        `mode when the node has no ${'nvidia.com/cc.mode'} label: ${DEFAULT_MODES.join(', ')} (a host without TEE gets off)`,
        {
          env: 'DEFAULT_CC_MODE',
          default: 'on',
        },
      ),
    )
    .addOption(
      mirroredOption(
        '--evict-operands <bool>',
        'pause the operands that use the GPUs (their --operand-labels) around a switch',
        { default: 'true' },
      ),
    )
    .addOption(
      mirroredOption(
        '--operand-labels <keys>',
        'the node labels that select the operands paused around a switch, comma separated (the overlay in use sets them)',
        { default: OPERAND_LABELS.join(',') },
      ),
    )
    .addOption(
      mirroredOption(
        '--operand-labels-absent <meaning>',
        `what an absent operand label means: ${ABSENT_MEANINGS.join(' (left absent) or ')} (paused, then "true")`,
        { default: 'not-deployed' },
      ),
    )
    .addOption(
      mirroredOption('--operand-wait <ms>', 'at most this long for the paused device plugins to stop', {
        default: '120000',
      }),
    )
    .addOption(
      mirroredOption(
        '--operand-socket-prefix <prefix>',
        'device-plugin sockets (in /var/lib/kubelet/device-plugins) that must vanish',
        { default: PLUGIN_SOCKET_PREFIX },
      ),
    )
    .addOption(
      mirroredOption(
        '--resync-interval <ms>',
        'periodic reconcile, so a failed or drifted device is corrected without a label change',
        { default: '60000' },
      ),
    )
    .addOption(
      mirroredOption(
        '--watch-timeout <s>',
        'the server ends each watch after this long; it resumes from the last version',
        { default: '300' },
      ),
    )
    .action(async (_o, command: Command) => {
      const o = readOptions(
        command,
        z.object({
          ...backendSchema,
          nodeName: z
            .string({ error: 'required: set NODE_NAME or --node-name' })
            .check(z.minLength(1, 'required: set NODE_NAME or --node-name')),
          kubeconfig: z.optional(z.string().check(z.minLength(1))),
          // An empty DEFAULT_CC_MODE (a template that renders nothing) means the default, as absent does.
          defaultMode: z.pipe(
            z.transform((v) => (v === '' ? 'on' : v)),
            z.enum(DEFAULT_MODES),
          ),
          evictOperands: booleanWord,
          operandLabels: parsedString(parseOperandLabelKeys, 'expected comma-separated node label keys (prefix/name)'),
          operandLabelsAbsent: z.enum(ABSENT_MEANINGS),
          operandWait: z.coerce.number().check(z.int(), z.minimum(0)),
          operandSocketPrefix: z.string().check(z.minLength(1)),
          resyncInterval: z.coerce.number().check(z.int(), z.positive()),
          watchTimeout: z.coerce.number().check(z.int(), z.positive()),
        }),
      );
      const { runDaemon } = await import('./daemon.js'); // the API client and the runtime load only here
      exit.code = await runDaemon(command, {
        backend: o.backend,
        gpuAdminTools: o.gpuAdminTools,
        ...(o.python ? { python: o.python } : {}),
        nvidiaSmi: o.nvidiaSmi,
        toolTimeout: o.toolTimeout,
        maxParallel: o.maxParallel,
        capability: capabilityTable({ cc: o.ccCapableIds, ppcie: o.ppcieCapableIds }),
        nodeName: o.nodeName,
        ...(o.kubeconfig ? { kubeconfig: o.kubeconfig } : {}),
        defaultMode: o.defaultMode,
        evictOperands: o.evictOperands,
        operandLabels: { keys: o.operandLabels, absent: o.operandLabelsAbsent },
        operandWait: o.operandWait,
        operandSocketPrefix: o.operandSocketPrefix,
        resyncInterval: o.resyncInterval,
        watchTimeout: o.watchTimeout,
      });
    });
  cli.addCommand(run);
  return cli;
}

/** Runs the CLI; returns the exit code: 0 done, 1 something could not be done, 2 bad usage or input. */
export function main(argv: string[], out: (text: string) => void = (t) => process.stdout.write(t)): Promise<number> {
  const exit = { code: 0 };
  return runCli(BINARY, keepExitCodes(program(out, exit), out), argv, exit, INPUT_ERRORS);
}

/** Errors in what the user gave us: exit 2, nothing was touched. */
const INPUT_ERRORS = new Set([
  'ERR_GPUCC_INVALID_CC_MODE',
  'ERR_GPUCC_INVALID_PCI_ADDRESS',
  'ERR_GPUCC_DEVICE_NOT_FOUND',
  'ERR_GPUCC_BEHIND_VMD',
  'ERR_GPUCC_KUBE_CONFIG',
  'ERR_GPUCC_NFD_FILE_NOT_OURS',
  'ERR_GPUCC_NFD_FILE_OUTSIDE_FEATURES_DIR',
]);
