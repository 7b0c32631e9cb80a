import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { localFs } from '@gpucc/hal';
import { KERNEL_LAUNCHER } from '../kernel/protocol.js';
import type { FakeToolName } from './entry.js';

/**
 * Installs the fake executables into a simulated node: small Node scripts that import this package's
 * bundled tool entry by absolute path, so they run from any working directory and PATH.
 */

export const GPU_TOOLS_PATH = 'opt/gpu-admin-tools/nvidia_gpu_tools.py';
export const NVIDIA_SMI_PATH = 'usr/bin/nvidia-smi';
export const MODPROBE_PATH = 'usr/sbin/modprobe';

const TOOLS: readonly { rel: string; name: FakeToolName }[] = [
  { rel: GPU_TOOLS_PATH, name: 'nvidia_gpu_tools' },
  { rel: NVIDIA_SMI_PATH, name: 'nvidia-smi' },
  { rel: MODPROBE_PATH, name: 'modprobe' },
];

/**
 * The bundled `dist/bundle/fake-tools.mjs` of this package (made by `pnpm build`), whether this module
 * runs from `src/` (tests) or `dist/`: one file starts several times faster than the module graph,
 * and a CC switch starts one tool process per device.
 */
export function defaultEntryModule(): string {
  const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  return path.join(packageRoot, 'dist', 'bundle', 'fake-tools.mjs');
}

/**
 * The script text. Only dynamic `import()` and `process.argv`, so it runs both as CommonJS and as
 * ES module (Node picks by the nearest package.json); argv[1] is the script's absolute path.
 */
export function fakeToolScript(name: FakeToolName, entryModule: string): string {
  const url = JSON.stringify(pathToFileURL(entryModule).href);
  return `#!/usr/bin/env node
// gpucc-sim fake ${name}: the logic is in @gpucc/sim (src/tools); the node root is two directories up.
import(${url}).then((tool) => tool.main(${JSON.stringify(name)}, process.argv[1], process.argv.slice(2)));
`;
}

/**
 * The kernel launcher's text (`.gpucc-sim/kernel.mjs`, run by the first writer): the fake-tools
 * bundle carries the kernel too, as the node's executables are one bundle.
 */
export function kernelLauncherScript(entryModule: string): string {
  const url = JSON.stringify(pathToFileURL(entryModule).href);
  return `// gpucc-sim: the simulated kernel of the node given as argument (packages/sim src/kernel/server.ts).
const root = process.argv.at(-1);
import(${url}).then((entry) => entry.serveKernel(root));
`;
}

export function installFakeTools(root: string, options: { entryModule?: string } = {}): void {
  const entry = options.entryModule ?? defaultEntryModule();
  for (const tool of TOOLS) {
    const abs = path.join(root, tool.rel);
    localFs.makeDir(path.dirname(abs), 0o755);
    localFs.writeFileSync(abs, fakeToolScript(tool.name, entry), 0o755);
  }
  localFs.writeFileSync(path.join(root, KERNEL_LAUNCHER), kernelLauncherScript(entry), 0o644);
  // A `.py` script is loaded as CommonJS only outside a "type": "module" package: pin it, in case the
  // node lives inside one (Node refuses unknown extensions as ES modules).
  localFs.writeFileSync(
    path.join(root, path.dirname(GPU_TOOLS_PATH), 'package.json'),
    '{ "type": "commonjs" }\n',
    0o644,
  );
}
