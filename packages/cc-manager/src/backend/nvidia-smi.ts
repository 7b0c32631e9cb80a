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
import type { CcBackend, DeviceModes, QueryAnswer } from './backend.js';
import { type ConfComputeOutput, parseConfCompute } from './nvidia-smi-output.js';

export interface NvidiaSmiOptions {
  /** Path of nvidia-smi, or a bare name looked up in PATH. */
  path: string;
  timeoutMs: number;
  maxParallel: number;
  logger: Logger;
  run?: (options: RunToolOptions) => Promise<ToolResult>;
}

/**
 * `nvidia-smi conf-compute` (docs/facts/cc-tools.md#nvidia-smi-conf-compute): reads the CC mode of GPUs bound to the
 * NVIDIA driver, one GPU per call (`-i <bdf>`; its answers are per selection, not per GPU). It has no way to
 * switch a mode, so `apply` always refuses. Prefers `-q` (drivers 570+) and falls back to `-f` and
 * `-mgm` where `-q` is unknown (550); `-d` tells devtools from on.
 */
export function nvidiaSmiBackend(options: NvidiaSmiOptions): CcBackend {
  const run = options.run ?? runTool;

  async function confCompute(
    address: string,
    flag: string,
    signal?: AbortSignal,
  ): Promise<{ exitCode: number; output: ConfComputeOutput; commandLine: string }> {
    const args = ['conf-compute', flag, '-i', address];
    const commandLine = formatCommandLine(options.path, args);
    // nvidia-smi's documented codes: 2 invalid argument, 6 not found, 9 driver not loaded; all carry words.
    const result = await run({
      command: options.path,
      args,
      timeoutMs: options.timeoutMs,
      allowedExitCodes: [0, 2, 3, 6, 9, 15, 255],
      killGraceMs: 2_000,
      ...(signal ? { signal } : {}),
    });
    options.logger.debug(
      { event: 'cc.tool', command: commandLine, exitCode: result.exitCode, durationMs: result.durationMs },
      'nvidia-smi call',
    );
    return {
      exitCode: result.exitCode,
      output: parseConfCompute(`${result.stdout}\n${result.stderr}`, commandLine),
      commandLine,
    };
  }

  function failed(
    c: { exitCode: number; output: ConfComputeOutput; commandLine: string },
    device: string,
    missing: string,
  ): GpuccError {
    const words = c.output.errors.join('; ');
    if (c.exitCode !== 0 || words) {
      return new GpuccError(
        'ERR_GPUCC_TOOL_FAILED',
        `${c.commandLine} exited with code ${c.exitCode}: ${words || 'no error message'}`,
        {
          hint: 'nvidia-smi needs the NVIDIA driver loaded and the GPU bound to it',
          details: { device, exitCode: c.exitCode, toolSaid: words },
        },
      );
    }
    return new GpuccError('ERR_GPUCC_TOOL_OUTPUT_UNRECOGNIZED', `${c.commandLine} printed no ${missing}`, {
      hint: 'run the command by hand; a driver with another output format needs a parser update',
      details: { device },
    });
  }

  async function readGpu(device: CcDevice, signal?: AbortSignal): Promise<QueryAnswer> {
    if (device.kind !== 'gpu') {
      return { error: unsupported(device, 'nvidia-smi reports no PPCIe mode of an NVSwitch') };
    }
    if (device.driver !== 'nvidia') {
      return {
        error: unsupported(
          device,
          `nvidia-smi sees GPUs through the NVIDIA driver only, and ${device.address} is ${device.driver ? `on ${device.driver}` : 'unbound'}`,
        ),
      };
    }
    try {
      let ccState: 'on' | 'off' | undefined;
      let multiGpu: string | undefined;
      const summary = await confCompute(device.address, '-q', signal);
      if (summary.exitCode === 0 && summary.output.ccState) {
        ccState = summary.output.ccState;
        multiGpu = summary.output.multiGpuMode;
      } else if (summary.exitCode === 2) {
        // 550 drivers have no -q: the one-line commands instead.
        const feature = await confCompute(device.address, '-f', signal);
        if (!feature.output.ccState) return { error: failed(feature, device.address, '"CC status: …" line') };
        ccState = feature.output.ccState;
        const mgm = await confCompute(device.address, '-mgm', signal);
        multiGpu = mgm.output.multiGpuMode;
      } else {
        return { error: failed(summary, device.address, '"CC State" row') };
      }
      const modes: DeviceModes = {};
      if (device.ccCapable) {
        if (ccState === 'on') {
          const devtools = await confCompute(device.address, '-d', signal);
          if (!devtools.output.devtools) return { error: failed(devtools, device.address, '"DevTools Mode: …" line') };
          modes.cc = devtools.output.devtools === 'on' ? 'devtools' : 'on';
        } else modes.cc = 'off';
      }
      if (device.ppcieCapable) modes.ppcie = multiGpu && /protected\s*pcie/i.test(multiGpu) ? 'on' : 'off';
      return { modes };
    } catch (error) {
      if (signal?.aborted) throw error;
      return {
        error: isGpuccError(error)
          ? error
          : new GpuccError('ERR_GPUCC_TOOL_FAILED', String(error), { hint: 'run nvidia-smi by hand', cause: error }),
      };
    }
  }

  return {
    name: 'nvidia-smi',
    canSwitch: false,
    command: options.path,
    async query(devices, signal) {
      const asked = devices.filter((d) => (d.kind === 'gpu' && d.ccCapable) || d.ppcieCapable);
      const answers = await mapBounded(asked, options.maxParallel, (d) => readGpu(d, signal));
      return new Map<PciAddress, QueryAnswer>(asked.map((d, i) => [d.address, answers[i]!]));
    },
    async apply() {
      throw cannotSwitch();
    },
    async set() {
      throw cannotSwitch();
    },
    async reset() {
      throw cannotSwitch();
    },
  };
}

export function cannotSwitch(): GpuccError {
  return new GpuccError('ERR_GPUCC_CC_BACKEND_CANNOT_SWITCH', 'nvidia-smi can read the CC mode but never switch it', {
    hint: 'install gpu-admin-tools and use --backend gpu-admin-tools (or auto), with --gpu-admin-tools PATH',
  });
}

function unsupported(device: CcDevice, why: string): GpuccError {
  return new GpuccError('ERR_GPUCC_CC_QUERY_UNSUPPORTED', `cannot read the mode of ${device.address}: ${why}`, {
    hint: 'use --backend gpu-admin-tools, which reads devices on vfio-pci and NVSwitches too',
    details: { device: device.address },
  });
}
