// Makes a V8 code cache of an operand's CommonJS bundle, under the V8 flags this Node runs with:
//   node [flags] scripts/sea/make-cache.cjs BUNDLE OUT [ARGS...]
// The bundle runs with ARGS (e.g. --version: every module is loaded and initialised, nothing else is
// done), then the cache is written as the process exits, so that it holds the code that ran, not
// only the top level. Used by scripts/build-binaries.mjs; the wrapper is scripts/sea/loader.cjs's.
'use strict';
const fs = require('node:fs');
const vm = require('node:vm');

const [bundle, out, ...args] = process.argv.slice(2);
const source = fs.readFileSync(bundle, 'utf8');
const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
  filename: bundle,
});
process.argv = [process.execPath, bundle, ...args];
process.on('exit', () => fs.writeFileSync(out, script.createCachedData()));
const mod = { exports: {} };
script.runInThisContext()(mod.exports, require, mod, bundle, require('node:path').dirname(bundle));
