import type { Logger } from '@gpucc/daemon';
import {
  formatCommandLine,
  GpuccError,
  isGpuccError,
  type PciAddress,
  type RunToolOptions,
  runTool,
  type ToolResult,
} from '@gpucc/hal';
import type { CcDevice } from '../devices.js';
import { mapBounded } from '../pool.js';
import { type CcBackend, type DeviceModes, type QueryAnswer, queryKinds, type SwitchStep } from './backend.js';
import { type DeviceReport, type GpuToolsOutput, parseGpuToolsOutput, toolWords } from './gpu-tools-output.js';

export interface GpuAdminToolsOptions {
  /** Path of nvidia_gpu_tools.py. */
  script: string;
  /** An interpreter to run it with (`python3`); unset = run the script itself (its shebang). */
  python?: string;
  /** Deadline of one call: start-up, knob writes, reset and the boot wait of the devices it works on. */
  timeoutMs: number;
  maxParallel: number;
  logger: Logger;
  /** Injected in tests; hal's runTool otherwise. */
  run?: (options: RunToolOptions) => Promise<ToolResult>;
}

/** What one call asks a device: its CC mode, its PPCIe mode, its PPCIe knobs (the firmware probe). */
interface Asked {
  cc: boolean;
  ppcie: boolean;
  ppcieSettings: boolean;
}

/** gpu-admin-tools can also tell, read-only, whether a device's firmware supports CC and PPCIe. */
export interface GpuAdminToolsBackend extends CcBackend {
  /**
   * Asks each device what shows whether its firmware supports `want`: `--query-cc-mode` (CC-capable
   * GPUs) and, for PPCIe, `--query-ppcie-mode --query-ppcie-settings` (PPCIe-capable devices; the
   * settings are read through the FSP, which old firmware refuses). Queries only, never a knob write or
   * a reset. A device the tool refuses gets ERR_GPUCC_CC_FIRMWARE_UNSUPPORTED; one it answers, its modes.
   */
  probeFirmware(
    devices: readonly CcDevice[],
    want: { cc: boolean; ppcie: boolean },
    signal?: AbortSignal,
  ): Promise<Map<PciAddress, QueryAnswer>>;
}

interface Call {
  args: string[];
  exitCode: number;
  output: GpuToolsOutput;
  commandLine: string;
}

/**
 * gpu-admin-tools (`nvidia_gpu_tools.py`, docs/facts/cc-tools.md#gpu-admin-tools-flags): the only way to switch a
 * mode on a host. Queries go in one call per kind of question (`--devices A,B,… --query-cc-mode`), falling
 * back to one call per device (`--gpu-bdf`) for devices the batch did not answer (an older tool
 * without `--devices`, or a device that failed and stopped the batch). A switch is one call per
 * device: set the knobs and `--reset-after-…-switch` (the tool resets, waits for boot and checks),
 * so the callers can reset many devices at once by running calls in parallel.
 */
export function gpuAdminToolsBackend(options: GpuAdminToolsOptions): GpuAdminToolsBackend {
  const run = options.run ?? runTool;
  const command = options.python ?? options.script;
  const prefix = options.python ? [options.script] : [];

  async function call(args: string[], signal?: AbortSignal): Promise<Call> {
    const full = [...prefix, ...args];
    const commandLine = formatCommandLine(command, full);
    const result = await run({
      command,
      args: full,
      timeoutMs: options.timeoutMs,
      // 1: the tool's own failure (an ERROR line or a traceback); 2: argparse. Both are parsed for words.
      allowedExitCodes: [0, 1, 2],
      killGraceMs: 2_000,
      ...(signal ? { signal } : {}),
    });
    options.logger.debug(
      { event: 'cc.tool', command: commandLine, exitCode: result.exitCode, durationMs: result.durationMs },
      'gpu-admin-tools call',
    );
    const out = parseGpuToolsOutput(result.stdout, `${commandLine}: stdout`);
    const err = parseGpuToolsOutput(result.stderr, `${commandLine}: stderr`);
    for (const note of [...out.notes, ...err.notes]) {
      options.logger.debug({ event: 'cc.tool.note', command: commandLine, ...note }, 'unrecognised tool message kept');
    }
    return { args, exitCode: result.exitCode, output: merge(out, err), commandLine };
  }

  function failure(c: Call, device: string, what: string): GpuccError {
    const words = toolWords(c.output, device);
    if (c.exitCode !== 0 || words) {
      return new GpuccError(
        'ERR_GPUCC_TOOL_FAILED',
        `${c.commandLine} ${c.exitCode === 0 ? 'reported an error' : `exited with code ${c.exitCode}`}: ${words || 'no error message'}`,
        {
          hint: 'see the tool’s words above; run the same command by hand, and check the device and dmesg',
          details: { device, exitCode: c.exitCode, toolSaid: words },
        },
      );
    }
    return new GpuccError(
      'ERR_GPUCC_TOOL_OUTPUT_UNRECOGNIZED',
      `${c.commandLine} exited 0 but printed no ${what} for ${device}`,
      {
        hint: 'run the command by hand; a gpu-admin-tools version with another output format needs a parser update',
        details: { device },
      },
    );
  }

  /** The tool refused what it was asked of the device: the device or its firmware lacks it. */
  function refused(c: Call, device: string, what: 'cc' | 'ppcie', message: string): GpuccError {
    const mode = what === 'cc' ? 'CC' : 'PPCIe';
    return new GpuccError(
      'ERR_GPUCC_CC_FIRMWARE_UNSUPPORTED',
      `${c.commandLine}: gpu-admin-tools says ${device} does not support ${mode}: ${message}`,
      {
        hint: `its PCI device ID has ${mode}, so its firmware (VBIOS) most likely lacks it: update the firmware to a release with ${mode} support (NVIDIA's Confidential Computing deployment guide), or leave the device out`,
        details: { device, what, exitCode: c.exitCode, toolSaid: toolWords(c.output, device) || message },
      },
    );
  }

  /** The answer of one device from a call that asked it, or why there is none. */
  function answerFrom(c: Call, device: CcDevice, asked: Asked): QueryAnswer {
    const report = c.output.devices.get(device.address);
    const lacks = report?.unsupported;
    if (asked.cc && lacks?.cc) return { error: refused(c, device.address, 'cc', lacks.cc) };
    if ((asked.ppcie || asked.ppcieSettings) && lacks?.ppcie) {
      return { error: refused(c, device.address, 'ppcie', lacks.ppcie) };
    }
    const modes: DeviceModes = {};
    if (asked.cc && report?.cc) modes.cc = report.cc;
    if (asked.ppcie && report?.ppcie) modes.ppcie = report.ppcie;
    const settings = !asked.ppcieSettings || report?.ppcieSettings === true;
    if ((!asked.cc || modes.cc) && (!asked.ppcie || modes.ppcie) && settings) return { modes };
    const missing =
      asked.cc && !modes.cc
        ? '"CC mode is …" line'
        : asked.ppcie && !modes.ppcie
          ? '"PPCIe mode is …" line'
          : '"PPCIe settings:" line';
    return { error: failure(c, device.address, missing) };
  }

  const flagsOf = (asked: Asked) => [
    ...(asked.cc ? ['--query-cc-mode'] : []),
    ...(asked.ppcie ? ['--query-ppcie-mode'] : []),
    ...(asked.ppcieSettings ? ['--query-ppcie-settings'] : []),
  ];

  async function askOne(device: CcDevice, asked: Asked, signal?: AbortSignal): Promise<QueryAnswer> {
    try {
      return answerFrom(await call([`--gpu-bdf=${device.address}`, ...flagsOf(asked)], signal), device, asked);
    } catch (error) {
      if (signal?.aborted) throw error;
      return { error: asError(error) };
    }
  }

  /**
   * One `--devices` call per set of questions, then one call per device the batch did not answer; a
   * refusal found in the batch is an answer too (asking again would get the same words).
   */
  async function ask(
    devices: readonly CcDevice[],
    askedOf: (device: CcDevice) => Asked,
    signal?: AbortSignal,
  ): Promise<Map<PciAddress, QueryAnswer>> {
    const answers = new Map<PciAddress, QueryAnswer>();
    const groups = new Map<string, { asked: Asked; group: CcDevice[] }>();
    for (const device of devices) {
      const asked = askedOf(device);
      const flags = flagsOf(asked).join(' ');
      if (flags === '') continue;
      const entry = groups.get(flags) ?? { asked, group: [] };
      entry.group.push(device);
      groups.set(flags, entry);
    }
    await Promise.all(
      [...groups.values()].map(async ({ asked, group }) => {
        try {
          const c = await call(['--devices', group.map((d) => d.address).join(','), ...flagsOf(asked)], signal);
          for (const device of group) {
            const answer = answerFrom(c, device, asked);
            if ('modes' in answer || isGpuccError(answer.error, 'ERR_GPUCC_CC_FIRMWARE_UNSUPPORTED')) {
              answers.set(device.address, answer);
            }
          }
        } catch (error) {
          if (signal?.aborted) throw error;
          options.logger.debug(
            { event: 'cc.tool.batch-failed', err: asError(error) },
            'batch query failed; asking each device',
          );
        }
      }),
    );
    const missing = devices.filter((d) => flagsOf(askedOf(d)).length > 0 && !answers.has(d.address));
    const single = await mapBounded(missing, options.maxParallel, (d) => askOne(d, askedOf(d), signal));
    for (const [i, d] of missing.entries()) answers.set(d.address, single[i]!);
    return answers;
  }

  return {
    name: 'gpu-admin-tools',
    canSwitch: true,
    command,

    query(devices, signal) {
      return ask(devices, (d) => ({ ...queryKinds(d), ppcieSettings: false }), signal);
    },

    probeFirmware(devices, want, signal) {
      return ask(
        devices,
        (d) => {
          const kinds = queryKinds(d);
          const ppcie = want.ppcie && kinds.ppcie;
          return { cc: want.cc && kinds.cc, ppcie, ppcieSettings: ppcie };
        },
        signal,
      );
    },

    async apply(device, step) {
      const args = [`--gpu-bdf=${device.address}`];
      if (step.cc) args.push(`--set-cc-mode=${step.cc}`);
      // With a PPCIe change the one reset after it applies the CC knobs too (per-GPU phase runs first).
      if (step.cc && !step.ppcie) args.push('--reset-after-cc-mode-switch');
      if (step.ppcie) args.push(`--set-ppcie-mode=${step.ppcie}`, '--reset-after-ppcie-mode-switch');
      const c = await call(args);
      const report = c.output.devices.get(device.address);
      const lacks = report?.unsupported;
      if (step.cc && lacks?.cc) throw refused(c, device.address, 'cc', lacks.cc);
      if (step.ppcie && lacks?.ppcie) throw refused(c, device.address, 'ppcie', lacks.ppcie);
      if (c.exitCode !== 0 || !confirmed(report, step)) throw failure(c, device.address, 'confirmation of the switch');
    },

    async set(device, step) {
      const args = [`--gpu-bdf=${device.address}`];
      if (step.cc) args.push(`--set-cc-mode=${step.cc}`);
      if (step.ppcie) args.push(`--set-ppcie-mode=${step.ppcie}`);
      const c = await call(args);
      const report = c.output.devices.get(device.address);
      const lacks = report?.unsupported;
      if (step.cc && lacks?.cc) throw refused(c, device.address, 'cc', lacks.cc);
      if (step.ppcie && lacks?.ppcie) throw refused(c, device.address, 'ppcie', lacks.ppcie);
      const set = report && (!step.cc || report.ccSet === step.cc) && (!step.ppcie || report.ppcieSet === step.ppcie);
      if (c.exitCode !== 0 || !set) throw failure(c, device.address, 'confirmation of the knobs set');
    },

    async reset(device) {
      const c = await call([`--gpu-bdf=${device.address}`, '--reset-with-os']);
      if (c.exitCode !== 0) throw failure(c, device.address, 'reset');
    },
  };
}

/** The tool said it set each knob asked and reset the device to apply it. */
function confirmed(report: DeviceReport | undefined, step: SwitchStep): boolean {
  if (!report) return false;
  if (step.cc && report.ccSet !== step.cc) return false;
  if (step.cc && !step.ppcie && !report.ccReset) return false;
  if (step.ppcie && (report.ppcieSet !== step.ppcie || !report.ppcieReset)) return false;
  return true;
}

function merge(a: GpuToolsOutput, b: GpuToolsOutput): GpuToolsOutput {
  const devices = new Map(a.devices);
  for (const [address, report] of b.devices) {
    const prev = devices.get(address);
    devices.set(
      address,
      prev
        ? {
            ...prev,
            ...Object.fromEntries(Object.entries(report).filter(([, v]) => v !== undefined && v !== false)),
          }
        : report,
    );
  }
  return {
    ...((a.version ?? b.version) ? { version: a.version ?? b.version } : {}),
    devices,
    errors: [...a.errors, ...b.errors],
    notes: [...a.notes, ...b.notes],
  };
}

function asError(error: unknown): GpuccError {
  if (isGpuccError(error)) return error;
  return new GpuccError(
    'ERR_GPUCC_TOOL_FAILED',
    `gpu-admin-tools failed: ${(error as Error)?.message ?? String(error)}`,
    {
      hint: 'run the tool by hand to see what it does',
      cause: error,
    },
  );
}
