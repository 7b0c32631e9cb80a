import path from 'node:path';
import type { Host, Logger } from '@gpucc/daemon';
import { GpuccError, localFs, type SimulatedTools } from '@gpucc/hal';
import type { BACKENDS, CcBackend } from './backend.js';
import { gpuAdminToolsBackend } from './gpu-admin-tools.js';
import { nvidiaSmiBackend } from './nvidia-smi.js';

/** Where the tools are when nobody says: the container's own copy (DaemonSet image) and PATH. */
export const DEFAULT_GPU_ADMIN_TOOLS = '/opt/gpu-admin-tools/nvidia_gpu_tools.py';
export const DEFAULT_NVIDIA_SMI = 'nvidia-smi';

export interface BackendSettings {
  backend: (typeof BACKENDS)[number];
  gpuAdminTools: string;
  python?: string;
  nvidiaSmi: string;
  timeoutMs: number;
  maxParallel: number;
  logger: Logger;
  /** A simulated node's own tools (openHost's `tools`), which stand in for the defaults. */
  simulatedTools?: SimulatedTools;
}

/** The tool paths after the simulated-node defaults are applied. */
export function toolPaths(s: Pick<BackendSettings, 'gpuAdminTools' | 'nvidiaSmi' | 'simulatedTools'>) {
  const sim = s.simulatedTools;
  return {
    gpuAdminTools: sim && s.gpuAdminTools === DEFAULT_GPU_ADMIN_TOOLS ? sim.gpuAdminTools : s.gpuAdminTools,
    nvidiaSmi: sim && s.nvidiaSmi === DEFAULT_NVIDIA_SMI ? sim.nvidiaSmi : s.nvidiaSmi,
  };
}

/** An executable's path if it exists: absolute or relative as given, a bare name through PATH. */
export function findExecutable(command: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (command.includes('/')) return localFs.exists(path.resolve(command)) ? path.resolve(command) : undefined;
  for (const dir of (env.PATH ?? '').split(':').filter(Boolean)) {
    const candidate = path.join(dir, command);
    if (localFs.kindOf(candidate) === 'file') return candidate;
  }
  return undefined;
}

/** The tool flags both `run` and the one-shot commands take (`--backend`, `--gpu-admin-tools`, ...). */
export interface ToolFlags {
  backend: (typeof BACKENDS)[number];
  gpuAdminTools: string;
  python?: string | undefined;
  nvidiaSmi: string;
  toolTimeout: number;
  maxParallel: number;
}

/** The backend for an opened host: its flags, and a simulated node's own tools where it has them. */
export function selectBackendFor(flags: ToolFlags, logger: Logger, host: Host): CcBackend {
  return selectBackend({
    backend: flags.backend,
    gpuAdminTools: flags.gpuAdminTools,
    ...(flags.python ? { python: flags.python } : {}),
    nvidiaSmi: flags.nvidiaSmi,
    timeoutMs: flags.toolTimeout,
    maxParallel: flags.maxParallel,
    logger,
    ...(host.tools ? { simulatedTools: host.tools } : {}),
  });
}

/** `auto`: gpu-admin-tools when its script is there (it can switch), else nvidia-smi (read only). */
export function selectBackend(s: BackendSettings): CcBackend {
  const paths = toolPaths(s);
  const gat = () =>
    gpuAdminToolsBackend({
      script: paths.gpuAdminTools,
      ...(s.python ? { python: s.python } : {}),
      timeoutMs: s.timeoutMs,
      maxParallel: s.maxParallel,
      logger: s.logger,
    });
  const smi = () =>
    nvidiaSmiBackend({ path: paths.nvidiaSmi, timeoutMs: s.timeoutMs, maxParallel: s.maxParallel, logger: s.logger });
  if (s.backend === 'gpu-admin-tools') return gat();
  if (s.backend === 'nvidia-smi') return smi();
  if (findExecutable(paths.gpuAdminTools)) return gat();
  if (findExecutable(paths.nvidiaSmi)) {
    s.logger.warn(
      { event: 'cc.backend.read-only', gpuAdminTools: paths.gpuAdminTools },
      `gpu-admin-tools not found at ${paths.gpuAdminTools}: using nvidia-smi, which can read CC modes but not switch them`,
    );
    return smi();
  }
  throw new GpuccError(
    'ERR_GPUCC_TOOL_NOT_FOUND',
    `neither gpu-admin-tools (${paths.gpuAdminTools}) nor nvidia-smi (${paths.nvidiaSmi}) was found`,
    {
      hint: 'install gpu-admin-tools and pass --gpu-admin-tools PATH to nvidia_gpu_tools.py (and --python python3 if it is not executable)',
      details: { gpuAdminTools: paths.gpuAdminTools, nvidiaSmi: paths.nvidiaSmi },
    },
  );
}
