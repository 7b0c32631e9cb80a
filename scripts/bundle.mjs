#!/usr/bin/env node
// Bundles each binary's compiled CLI into one file (dist/bundle/<bin>.mjs), which the bin scripts
// load: one file starts in about 60% of the time of hundreds of modules (zod, pino, commander...).
// Run by `pnpm build` after `tsc -b`.
import path from 'node:path';
import { build } from 'esbuild';

const root = path.resolve(import.meta.dirname, '..');
const BINARIES = [
  { pkg: 'sim', bin: 'gpucc-sim' },
  // What the fake CC tools of a simulated node run: several start per CC switch, so start-up counts.
  { pkg: 'sim', bin: 'fake-tools', entry: 'tools/entry.js' },
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
  selected.map(({ pkg, bin, entry = 'cli.js' }) =>
    build({
      entryPoints: [path.join(root, 'packages', pkg, 'dist', entry)],
      outfile: path.join(root, 'packages', pkg, 'dist', 'bundle', `${bin}.mjs`),
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      logLevel: 'warning',
      // Whitespace and syntax only: names stay readable in stack traces. Comments go, and the ASCII
      // charset escapes the rest, so V8 can keep the source as a one-byte string (half the memory).
      minifyWhitespace: true,
      minifySyntax: true,
      charset: 'ascii',
      // CommonJS dependencies (pino, prom-client) call require(); give the ES module bundle one.
      banner: {
        js: "import { createRequire as __gpuccRequire } from 'node:module'; const require = __gpuccRequire(import.meta.url);",
      },
    }),
  ),
);
