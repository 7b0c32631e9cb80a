#!/usr/bin/env node
// Bundles each binary's compiled CLI into one file (dist/bundle/<bin>.mjs), which the bin scripts
// load: one file starts in about 60% of the time of hundreds of modules (zod, pino, commander...).
// Run by `pnpm build` after `tsc -b`.
import path from 'node:path';
import { build } from 'esbuild';

const root = path.resolve(import.meta.dirname, '..');
const BINARIES = [
  { pkg: 'sim', bin: 'gpucc-sim' },
  // The simulator is bundled too (loaded lazily, only for a simulated node): one copy of the hal.
  { pkg: 'vfio-manager', bin: 'vfio-manager' },
  { pkg: 'cc-manager', bin: 'cc-manager' },
  { pkg: 'kata-manager', bin: 'kata-manager' },
  { pkg: 'sandbox-device-plugin', bin: 'sandbox-device-plugin' },
];

// `node scripts/bundle.mjs [bin...]` bundles only the named binaries.
const only = process.argv.slice(2);
const selected = only.length ? BINARIES.filter((b) => only.includes(b.bin)) : BINARIES;

await Promise.all(
  selected.map(({ pkg, bin }) =>
    build({
      entryPoints: [path.join(root, 'packages', pkg, 'dist', 'cli.js')],
      outfile: path.join(root, 'packages', pkg, 'dist', 'bundle', `${bin}.mjs`),
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      logLevel: 'warning',
      // CommonJS dependencies (pino, prom-client) call require(); give the ES module bundle one.
      banner: {
        js: "import { createRequire as __gpuccRequire } from 'node:module'; const require = __gpuccRequire(import.meta.url);",
      },
    }),
  ),
);
