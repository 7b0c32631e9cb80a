#!/usr/bin/env node
// The four operands and gpucc as files that run without the repository (`pnpm build:binaries`):
//   <out>/<bin>.mjs  one ES module with every dependency in it: `node <bin>.mjs` or `./<bin>.mjs`
//   <out>/<bin>      a single executable application (SEA): a copy of this Node with the bundle injected
// Options: --out-dir DIR (default dist/binaries), --only BIN[,BIN] (repeatable), --no-sea,
// --no-code-cache (SEA without V8's code cache, to compare start-up). Needs the compiled packages
// (`pnpm build`, which `pnpm build:binaries` runs first). The esbuild options are scripts/bundle.mjs's.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { BINARIES, DAEMON_NODE_OPTIONS, entryOf, esbuildOptions, root } from './bundle.mjs';

const OPERANDS = ['vfio-manager', 'cc-manager', 'kata-manager', 'sandbox-device-plugin', 'gpucc'];
// The fuse that postject flips in a Node binary built with SEA support (Node's src/node_sea.cc).
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

class UsageError extends Error {}

function parseOptions(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        'out-dir': { type: 'string', default: path.join(root, 'dist', 'binaries') },
        only: { type: 'string', multiple: true },
        'no-sea': { type: 'boolean', default: false },
        'no-code-cache': { type: 'boolean', default: false },
      },
    }));
  } catch (error) {
    throw new UsageError(error.message);
  }
  const only = (values.only ?? []).flatMap((o) => o.split(',')).filter(Boolean);
  const unknown = only.filter((bin) => !OPERANDS.includes(bin));
  if (unknown.length) throw new UsageError(`unknown binary ${unknown.join(', ')}: choose from ${OPERANDS.join(', ')}`);
  return {
    outDir: path.resolve(values['out-dir']),
    binaries: BINARIES.filter((b) => OPERANDS.includes(b.bin) && (only.length === 0 || only.includes(b.bin))),
    sea: !values['no-sea'],
    codeCache: !values['no-code-cache'],
  };
}

/** Calls main itself, as the bin scripts do; no top-level await, so the same text works as CommonJS. */
function entryStdin(binary) {
  return {
    contents: `import { main } from ${JSON.stringify(entryOf(binary))};\nmain(process.argv).then((code) => { process.exitCode = code; });\n`,
    resolveDir: root,
    sourcefile: `${binary.bin}-main.js`,
    loader: 'js',
  };
}

async function buildModule(binary, outDir) {
  const outfile = path.join(outDir, `${binary.bin}.mjs`);
  await build({
    ...esbuildOptions({ format: 'esm', banner: '#!/usr/bin/env node\n' }),
    stdin: entryStdin(binary),
    outfile,
  });
  fs.chmodSync(outfile, 0o755);
  return outfile;
}

/** Why this Node cannot make single executables, or undefined when it can. */
function seaUnsupported() {
  if (process.platform !== 'linux' && process.platform !== 'darwin') return `not on ${process.platform}`;
  // Only the fuse's unflipped form (":0"): a Node that is itself a SEA cannot take a second blob.
  if (!fs.readFileSync(process.execPath).includes(`${SEA_FUSE}:0`)) {
    return `${process.execPath} (Node ${process.version}) was built without the SEA fuse`;
  }
  return undefined;
}

function run(command, args) {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.error) throw new Error(`${command}: ${result.error.message}`);
  if (result.status !== 0) {
    const detail = `${result.stderr}${result.stdout}`.trim().split('\n').at(-1);
    throw new Error(`${command} ${args.join(' ')} failed (exit ${result.status}): ${detail}`);
  }
}

/** Writes postject's progress nowhere: its one message, on ELF, is a harmless '.note.100' warning. */
async function quietly(fn) {
  const { log, warn } = console;
  console.log = console.warn = () => {};
  try {
    return await fn();
  } finally {
    Object.assign(console, { log, warn });
  }
}

async function buildExecutable(binary, outDir, workDir, { codeCache }) {
  // Node 20 runs only a CommonJS main script in a SEA, and its require() loads built-ins only: hence
  // a CommonJS bundle of everything (in the SEA, __filename is the executable). scripts/sea/loader.cjs
  // is the main script; it runs the bundle, an asset, with the code cache that fits the V8 flags.
  const script = path.join(workDir, `${binary.bin}.cjs`);
  await build({ ...esbuildOptions({ format: 'cjs' }), stdin: entryStdin(binary), outfile: script });
  const daemonFlags = DAEMON_NODE_OPTIONS.split(' ').filter((flag) => !flag.startsWith('--disable-warning'));
  const assets = { 'bundle.js': script };
  if (codeCache) {
    // Made by the same Node that is copied: a code cache is only valid for its V8, and its flags.
    for (const [name, flags] of [
      ['cli.cache', []],
      ['daemon.cache', daemonFlags],
    ]) {
      assets[name] = path.join(workDir, `${binary.bin}.${name}`);
      run(process.execPath, [
        ...flags,
        path.join(root, 'scripts/sea/make-cache.cjs'),
        script,
        assets[name],
        '--version',
      ]);
    }
  }
  const loader = path.join(workDir, `${binary.bin}-loader.cjs`);
  fs.writeFileSync(
    loader,
    fs
      .readFileSync(path.join(root, 'scripts/sea/loader.cjs'), 'utf8')
      .replace('/* DAEMON_V8_FLAGS */ []', JSON.stringify(daemonFlags))
      .replace('/* CACHES */ true', String(codeCache)),
  );
  const blob = path.join(workDir, `${binary.bin}.blob`);
  const config = path.join(workDir, `${binary.bin}.sea.json`);
  fs.writeFileSync(
    config,
    JSON.stringify({ main: loader, output: blob, disableExperimentalSEAWarning: true, useCodeCache: false, assets }),
  );
  run(process.execPath, ['--experimental-sea-config', config]);

  const executable = path.join(outDir, binary.bin);
  fs.rmSync(executable, { force: true }); // never write into a copy that may be running
  fs.copyFileSync(process.execPath, executable);
  fs.chmodSync(executable, 0o755);
  if (process.platform === 'darwin') run('codesign', ['--remove-signature', executable]);
  const { inject } = (await import('postject')).default;
  await quietly(() =>
    inject(executable, 'NODE_SEA_BLOB', fs.readFileSync(blob), {
      sentinelFuse: SEA_FUSE,
      ...(process.platform === 'darwin' ? { machoSegmentName: 'NODE_SEA' } : {}),
    }),
  );
  if (process.platform === 'darwin') run('codesign', ['--sign', '-', executable]);
  return executable;
}

function report(file) {
  const mib = fs.statSync(file).size / 2 ** 20;
  const relative = path.relative(process.cwd(), file);
  console.log(`  ${relative.startsWith('..') ? file : relative}  ${mib.toFixed(1)} MiB`);
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  const missing = options.binaries.map(entryOf).filter((entry) => !fs.existsSync(entry));
  if (missing.length) {
    throw new Error(
      `${path.relative(root, missing[0])} is missing: run \`pnpm build\` first (\`pnpm build:binaries\` does)`,
    );
  }
  fs.mkdirSync(options.outDir, { recursive: true });

  const modules = await Promise.all(options.binaries.map((b) => buildModule(b, options.outDir)));
  console.log(`build-binaries: ${modules.length} single-file bundle(s), for Node >= 20.19:`);
  modules.forEach(report);

  const unsupported = options.sea ? seaUnsupported() : 'skipped (--no-sea)';
  if (unsupported) {
    console.log(`build-binaries: no single executables: ${unsupported}`);
    return;
  }
  // One at a time: each reads and writes a whole copy of Node (about 100 MiB).
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpucc-sea-'));
  try {
    const executables = [];
    for (const binary of options.binaries) {
      executables.push(await buildExecutable(binary, options.outDir, workDir, options));
    }
    console.log(`build-binaries: ${executables.length} single executable(s) (Node ${process.version}):`);
    executables.forEach(report);
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}

try {
  await main();
} catch (error) {
  // One line: esbuild has already printed the details of a failed bundle.
  console.error(`build-binaries: ${String(error.message).split('\n')[0]}`);
  process.exitCode = error instanceof UsageError ? 2 : 1;
}
