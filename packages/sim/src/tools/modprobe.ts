import { loadDriver } from '../node/effects.js';
import { Tree } from '../node/files.js';
import { readNodeSpec, withNodeLock, writeNodeSpec } from '../node/state.js';
import type { ToolIo, ToolOutcome } from './tool-io.js';

/**
 * The fake `modprobe`: loads a module of a driver the node knows (vfio_pci, nvgrace_gpu_vfio_pci…),
 * registering its PCI driver as the kernel would, and records it in node.json. A module already
 * present under sys/module is a silent success; any other name is not found.
 */

export type ModprobeArgs = { ok: true; module: string; quiet: boolean } | { ok: false; message: string };

/** The kernel treats `-` and `_` in module names alike. */
export function normalizeModule(name: string): string {
  return name.replaceAll('-', '_');
}

export function parseModprobeArgs(args: readonly string[]): ModprobeArgs {
  let quiet = false;
  const names: string[] = [];
  for (const arg of args) {
    if (arg === '-q' || arg === '--quiet') quiet = true;
    else if (arg === '-v' || arg === '--verbose' || arg === '-b' || arg === '--use-blacklist') continue;
    else if (arg.startsWith('-'))
      return { ok: false, message: `modprobe: ERROR: gpucc-sim's modprobe does not support ${arg}` };
    else names.push(arg);
  }
  // Words after the module name are module parameters (name=value); the fake ignores them.
  const module = names[0];
  if (module === undefined) return { ok: false, message: 'modprobe: ERROR: missing parameters. See -h.' };
  return { ok: true, module, quiet };
}

export async function runModprobe(root: string, args: readonly string[], io: ToolIo): Promise<ToolOutcome> {
  const parsed = parseModprobeArgs(args);
  if (!parsed.ok) {
    io.stderr(`${parsed.message}\n`);
    return 1;
  }
  const module = normalizeModule(parsed.module);
  const tree = new Tree(root, { replaceFiles: true });
  if (tree.exists(`sys/module/${module}`)) return 0;
  return withNodeLock(root, () => {
    const node = readNodeSpec(root);
    const drivers = node.drivers.filter((d) => normalizeModule(d.module) === module);
    if (drivers.length === 0) {
      if (!parsed.quiet) {
        io.stderr(
          `modprobe: FATAL: Module ${parsed.module} not found in directory /lib/modules/${node.kernelRelease}\n`,
        );
      }
      return 1;
    }
    for (const driver of drivers) if (!driver.loaded) loadDriver(tree, driver);
    writeNodeSpec(root, node);
    return 0;
  });
}
