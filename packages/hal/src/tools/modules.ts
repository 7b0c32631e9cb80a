import { GpuccError } from '../errors/index.js';
import type { HostRoot } from '../fs/index.js';
import { runTool, type ToolResult } from './runner.js';

export interface ModprobeOptions {
  /** Path of the modprobe executable (default `modprobe`, looked up in PATH). */
  path?: string;
  /** Default 30 s: loading a module is quick unless its probe hangs. */
  timeoutMs?: number;
  env?: Readonly<Record<string, string>>;
  killGraceMs?: number;
}

export interface ModprobePolicy {
  /** Whether this process may load kernel modules at all (`--load-modules`). */
  allow: boolean;
}

// Letters, digits, _ and -, but not a leading - (modprobe would read it as an option).
const MODULE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]*$/;
const DEFAULT_MODPROBE_TIMEOUT_MS = 30_000;

/** Validates a kernel module name before it reaches a path or a command line. */
export function parseModuleName(name: string): string {
  if (typeof name === 'string' && MODULE_NAME.test(name)) return name;
  throw new GpuccError('ERR_GPUCC_INVALID_MODULE_NAME', `invalid kernel module name ${JSON.stringify(name)}`, {
    hint: 'a module name has only letters, digits, _ and - and does not start with -, e.g. vfio_pci',
    details: { name },
  });
}

/**
 * Whether a module is loaded (or built in with parameters): `/sys/module/<name>` exists. The kernel
 * lists modules with `_`, while driver names often use `-` (vfio-pci), so both spellings are tried.
 */
export function isModuleLoaded(sysfs: HostRoot, name: string): boolean {
  const valid = parseModuleName(name);
  const spellings = new Set([valid, valid.replaceAll('-', '_'), valid.replaceAll('_', '-')]);
  for (const spelling of spellings) {
    if (sysfs.exists(`sys/module/${spelling}`)) return true;
  }
  return false;
}

/** Runs `modprobe <module>`; refuses unless the operator allowed loading modules. */
export async function modprobe(options: ModprobeOptions, module: string, policy: ModprobePolicy): Promise<ToolResult> {
  const valid = parseModuleName(module);
  if (!policy.allow) {
    throw new GpuccError('ERR_GPUCC_MODPROBE_DISABLED', `kernel module ${valid} is not loaded`, {
      hint: `load it on the host (modprobe ${valid}) or pass --load-modules to let gpucc load it`,
      details: { module: valid },
    });
  }
  return runTool({
    command: options.path ?? 'modprobe',
    args: [valid],
    timeoutMs: options.timeoutMs ?? DEFAULT_MODPROBE_TIMEOUT_MS,
    ...(options.env ? { env: options.env } : {}),
    ...(options.killGraceMs === undefined ? {} : { killGraceMs: options.killGraceMs }),
  });
}

/** Loads a module only when it is missing; says which happened. */
export async function ensureModuleLoaded(
  sysfs: HostRoot,
  module: string,
  options: ModprobeOptions,
  policy: ModprobePolicy,
): Promise<'already-loaded' | 'loaded'> {
  if (isModuleLoaded(sysfs, module)) return 'already-loaded';
  await modprobe(options, module, policy);
  return 'loaded';
}
