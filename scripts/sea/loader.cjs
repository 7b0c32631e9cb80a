// The main script of every single executable (scripts/build-binaries.mjs). It runs the operand's
// bundle, an asset of the executable, with the V8 code cache made for the V8 flags in force: one for
// the one-shot commands (no flags), one for the daemons (DAEMON_NODE_OPTIONS in scripts/bundle.mjs).
// Node's own SEA code cache holds one, made without flags, and rejects it under any V8 flag: the
// daemons then compiled everything at start (about 30 ms) and Node printed a warning. A cache that
// does not fit (another flag) is only slower: vm.Script rejects it silently.
'use strict';
const { getAsset } = require('node:sea');
const vm = require('node:vm');

// Filled in by the build: the V8 flags of the daemon cache, and whether there are caches at all.
const DAEMON_V8_FLAGS = /* DAEMON_V8_FLAGS */ [];
const CACHES = /* CACHES */ true;

// biome-ignore lint/suspicious/noUndeclaredEnvVars: read by the executable at run time, not by a build task
const options = (process.env.NODE_OPTIONS ?? '').split(/\s+/);
const daemon = DAEMON_V8_FLAGS.length > 0 && DAEMON_V8_FLAGS.every((flag) => options.includes(flag));
const cachedData = CACHES ? Buffer.from(getAsset(daemon ? 'daemon.cache' : 'cli.cache')) : undefined;
// The bundle is ASCII (esbuild's `charset: 'ascii'`), so latin1 reads it exactly: one copy into a
// one-byte string, where getAsset's own decoding runs a TextDecoder over it at every start.
const source = Buffer.from(getAsset('bundle.js')).toString('latin1');
// The same wrapper as the cache was made with (scripts/sea/make-cache.cjs): the source must match.
const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
  filename: __filename,
  ...(cachedData ? { cachedData } : {}),
});
script.runInThisContext()(module.exports, require, module, __filename, __dirname);
