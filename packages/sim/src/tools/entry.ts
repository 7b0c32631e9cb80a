import path from 'node:path';
import { isGpuccError } from '@gpucc/hal';

export { serveKernel } from '../kernel/server.js';

import { runGpuTools } from './gpu-tools.js';
import { runModprobe } from './modprobe.js';
import { runNvidiaSmi } from './nvidia-smi.js';
import type { ToolIo, ToolOutcome } from './tool-io.js';

/**
 * What the installed executables call: they pass their own path and arguments; the node root is two
 * directories above the script (`opt/gpu-admin-tools/`, `usr/bin/`, `usr/sbin/`).
 */

export type FakeToolName = 'nvidia_gpu_tools' | 'nvidia-smi' | 'modprobe';

export function nodeRootOf(scriptPath: string): string {
  return path.resolve(path.dirname(scriptPath), '..', '..');
}

export function runFakeTool(
  name: FakeToolName,
  scriptPath: string,
  args: readonly string[],
  io: ToolIo,
): Promise<ToolOutcome> {
  const root = nodeRootOf(scriptPath);
  switch (name) {
    case 'nvidia_gpu_tools':
      return runGpuTools(root, scriptPath, args, io);
    case 'nvidia-smi':
      return runNvidiaSmi(root, args, io);
    case 'modprobe':
      return runModprobe(root, args, io);
  }
}

/** Entry point of an installed executable: runs the tool on this process's streams and sets the exit code. */
export async function main(name: FakeToolName, scriptPath: string, args: readonly string[]): Promise<void> {
  const io: ToolIo = {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
  };
  let outcome: ToolOutcome;
  try {
    outcome = await runFakeTool(name, scriptPath, args, io);
  } catch (error) {
    // A broken node (not simulated, unreadable state) is the simulator's problem, not the tool's output.
    io.stderr(
      `gpucc-sim ${name}: ${isGpuccError(error) ? error.describe() : String((error as Error)?.stack ?? error)}\n`,
    );
    outcome = 1;
  }
  if (outcome === 'hang') {
    setInterval(() => {}, 2 ** 31 - 1); // keeps the event loop, hence the process, alive until killed
    return;
  }
  process.exitCode = outcome;
}
