import type { Logger } from '@gpucc/daemon';
import type { HostRoot } from '@gpucc/hal';
import { readWriteLog, simulatorAttachment } from '@gpucc/sim';
import { silentLogger } from '@gpucc/testbed/fixtures';
import type { CcBackend } from '../src/backend/backend.js';
import { DEFAULT_GPU_ADMIN_TOOLS, DEFAULT_NVIDIA_SMI, selectBackend } from '../src/backend/select.js';
import { DEFAULT_CAPABILITY } from '../src/capability.js';
import type { Context } from '../src/context.js';

/** The node's own fake tools, through the real backends. */
export function backendFor(
  root: string,
  o: { backend?: 'gpu-admin-tools' | 'nvidia-smi' | 'auto'; timeoutMs?: number; logger?: Logger } = {},
): CcBackend {
  return selectBackend({
    backend: o.backend ?? 'gpu-admin-tools',
    gpuAdminTools: DEFAULT_GPU_ADMIN_TOOLS,
    nvidiaSmi: DEFAULT_NVIDIA_SMI,
    timeoutMs: o.timeoutMs ?? 15_000,
    maxParallel: 16,
    logger: o.logger ?? silentLogger(),
    simulatedTools: simulatorAttachment.tools(root),
  });
}

/** Counts the calls made to a backend, to assert that nothing ran (`applies`: every call that writes). */
export function counted(backend: CcBackend): CcBackend & { queries: number; applies: number } {
  const counter = {
    name: backend.name,
    canSwitch: backend.canSwitch,
    command: backend.command,
    queries: 0,
    applies: 0,
    query: (...args: Parameters<CcBackend['query']>) => {
      counter.queries++;
      return backend.query(...args);
    },
    apply: (...args: Parameters<CcBackend['apply']>) => {
      counter.applies++;
      return backend.apply(...args);
    },
    set: (...args: Parameters<CcBackend['set']>) => {
      counter.applies++;
      return backend.set(...args);
    },
    reset: (...args: Parameters<CcBackend['reset']>) => {
      counter.applies++;
      return backend.reset(...args);
    },
  };
  return counter;
}

export function contextFor(root: string, sysfs: HostRoot, o: Parameters<typeof backendFor>[1] = {}): Context {
  return {
    sysfs,
    backend: backendFor(root, o),
    capability: DEFAULT_CAPABILITY,
    logger: silentLogger(),
    maxParallel: 16,
  };
}

/** The sysfs `reset` writes the simulated kernel received (a mode applies only through one). */
export const resets = (root: string) =>
  readWriteLog(root)
    .filter((w) => w.path.endsWith('/reset'))
    .map((w) => w.path.split('/')[4]);

export const B200_GPUS = [0x13, 0x23, 0x33, 0x43, 0x53, 0x63, 0x73, 0x83].map((b) => `0000:${b.toString(16)}:00.0`);
export const H100_GPUS = B200_GPUS; // the HGX boards share their layout
export const NVSWITCHES = ['0000:07:00.0', '0000:08:00.0', '0000:09:00.0', '0000:0a:00.0'];
