#!/usr/bin/env node
// Bundles each binary's compiled CLI into one file (dist/bundle/<bin>.mjs), which the bin scripts
// load: one file starts in about 60% of the time of hundreds of modules (zod, pino, commander...).
// Run by `pnpm build` after `tsc -b`. The esbuild options live here only: scripts/build-binaries.mjs
// imports them for the self-contained files and executables.
import path from 'node:path';
import { build } from 'esbuild';

export const root = path.resolve(import.meta.dirname, '..');

/**
 * The Node options every daemon runs with (deploy/systemd's units and deploy/kubernetes' DaemonSets
 * set NODE_OPTIONS to exactly this; test/deploy-*.test.ts check it). A young generation of 2 MB
 * semi-spaces instead of V8's growth to 16 MB: under 16 concurrent Allocate callers the device
 * plugin's resident memory stayed at about 105 MB with the default and at about 80 MB with this, for
 * the same Allocate latency (pnpm bench). V8 rejects a code cache made under other flags, so each
 * single executable carries two, one made without flags for the commands a user runs and one made
 * under these for the daemons (scripts/sea/loader.cjs picks); `--disable-warning=Warning` keeps a
 * daemon run as a bundle under `node` quiet all the same.
 */
export const DAEMON_NODE_OPTIONS = '--max-semi-space-size=2 --disable-warning=Warning';

export const BINARIES = [
  { pkg: 'sim', bin: 'gpucc-sim' },
  // What the fake CC tools of a simulated node run: several start per CC switch, so start-up counts.
  { pkg: 'sim', bin: 'fake-tools', entry: 'tools/entry.js' },
  // What packages/sim/bin/attach.mjs loads when an operand launched from the repository opens a
  // simulated node. The operands' bundles carry no simulator.
  { pkg: 'sim', bin: 'attachment', entry: 'attachment.js' },
  { pkg: 'vfio-manager', bin: 'vfio-manager' },
  { pkg: 'cc-manager', bin: 'cc-manager' },
  { pkg: 'kata-manager', bin: 'kata-manager' },
  { pkg: 'sandbox-device-plugin', bin: 'sandbox-device-plugin' },
  { pkg: 'gpucc', bin: 'gpucc' },
];

/** The compiled module that a binary bundles (it exports `main(argv): Promise<number>`). */
export function entryOf({ pkg, entry = 'cli.js' }) {
  return path.join(root, 'packages', pkg, 'dist', entry);
}

/**
 * Modules that a dependency requires at load time for a feature gpucc never uses. The bundles get a
 * stand-in for each, which throws with the reason if anything ever calls it, instead of code that V8
 * would parse (and built-ins that Node would load) at every start:
 * - `@grpc/proto-loader`: grpc-js (only gpucc-sim's fake kubelet uses it; the device plugin speaks
 *   through hal's own transport) requires it, and with it protobufjs (280 KB), only to serve channelz
 *   and ORCA load reports;
 * - `thread-stream`: pino requires it for transports (log shipping in worker threads), and it loads
 *   `worker_threads`; gpucc logs JSON lines to stdout with no transport.
 */
const LEFT_OUT = {
  '@grpc/proto-loader': 'grpc-js channelz and ORCA are not used',
  'thread-stream': 'pino transports are not used',
};

const leaveOut = {
  name: 'leave-out',
  setup(build) {
    const names = Object.keys(LEFT_OUT).map((name) => name.replace(/[/]/g, '\\/'));
    build.onResolve({ filter: new RegExp(`^(${names.join('|')})$`) }, (args) => ({
      path: args.path,
      namespace: 'gpucc-left-out',
    }));
    build.onLoad({ filter: /.*/, namespace: 'gpucc-left-out' }, (args) => ({
      contents: `const why = ${JSON.stringify(`${args.path} is left out of gpucc binaries: ${LEFT_OUT[args.path]}`)};
function leftOut() { throw new Error(why); }
// Any export asked for is a function that throws the reason when called (or constructed).
module.exports = new Proxy(leftOut, { get: (target, key) => (typeof key === 'string' && !(key in target) && key !== '__esModule' ? leftOut : target[key]) });`,
      loader: 'js',
    }));
  },
};

/**
 * The esbuild options of every bundle, in ES module format (what the bin scripts load) or CommonJS
 * (what a Node 20 single executable application runs). `banner` is prepended to the format's own.
 */
export function esbuildOptions({ format = 'esm', banner = '' } = {}) {
  const formatOptions =
    format === 'esm'
      ? {
          // CommonJS dependencies (pino among them) call require(); give the ES module bundle one.
          banner: {
            js: `${banner}import { createRequire as __gpuccRequire } from 'node:module'; const require = __gpuccRequire(import.meta.url);`,
          },
        }
      : {
          // import.meta is empty in CommonJS: any user gets this file's URL, as in the ESM bundle
          // (the operands carry no simulator, whose fake-tools path was the one user). Top-level await
          // is not available either, and none is used.
          banner: {
            js: `${banner}var __gpuccImportMetaUrl = require('node:url').pathToFileURL(__filename).href;`,
          },
          define: { 'import.meta.url': '__gpuccImportMetaUrl' },
        };
  return {
    bundle: true,
    platform: 'node',
    format,
    target: 'node20',
    logLevel: 'warning',
    // Whitespace and syntax only: names stay readable in stack traces. Comments go, and the ASCII
    // charset escapes the rest, so V8 can keep the source as a one-byte string (half the memory).
    minifyWhitespace: true,
    minifySyntax: true,
    charset: 'ascii',
    plugins: [leaveOut],
    ...formatOptions,
  };
}

async function bundleAll(only) {
  const selected = only.length ? BINARIES.filter((b) => only.includes(b.bin)) : BINARIES;
  await Promise.all(
    selected.map((binary) =>
      build({
        ...esbuildOptions(),
        entryPoints: [entryOf(binary)],
        outfile: path.join(root, 'packages', binary.pkg, 'dist', 'bundle', `${binary.bin}.mjs`),
      }),
    ),
  );
}

// `node scripts/bundle.mjs [bin...]` bundles only the named binaries; importing this file runs nothing.
if (process.argv[1] && path.resolve(process.argv[1]) === import.meta.filename) {
  await bundleAll(process.argv.slice(2));
}
