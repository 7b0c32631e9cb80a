// The package boundaries the README states, checked on every file: nothing outside the hal touches the
// filesystem or spawns a process (the simulator and the testbed use hal's localFs too), operands never
// import each other, production never depends on the simulator or the testbed, what the binaries
// bundle validates with zod/mini, never zod's classic API (about 95 KB and 2 MB of memory at every
// start, packages/daemon/README.md), and tests import other packages by name, never their src/ by
// path. The checker is a pure function over file texts, so the test first proves on a small sample
// that each rule fails when broken.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = path.resolve(import.meta.dirname, '..');
const OPERANDS = ['cc-manager', 'vfio-manager', 'kata-manager', 'sandbox-device-plugin'];
const PRODUCTION = ['hal', 'daemon', ...OPERANDS];
const NOT_IN_PRODUCTION = ['@gpucc/sim', '@gpucc/testbed'];
const HOST_MODULES = ['fs', 'fs/promises', 'child_process'];
/** The packages whose src/ the binaries bundle, and zod's entry points that load its classic API. */
const BUNDLED = [...PRODUCTION, 'gpucc'];
const CLASSIC_ZOD = ['zod', 'zod/v4', 'zod/v3'];

interface SourceFile {
  /** Relative to the repository root, with `/`. */
  path: string;
  text: string;
}

/** Every module specifier a file imports or re-exports, statically or dynamically. */
function specifiers(text: string): string[] {
  const found = text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)['"]([^'"]+)['"]/g);
  return [...found].map((m) => m[1]!);
}

/** `packages/<name>/...` → name, else undefined. */
function packageOf(file: string): string | undefined {
  return /^packages\/([^/]+)\//.exec(file)?.[1];
}

function boundaryViolations(files: readonly SourceFile[]): string[] {
  const problems: string[] = [];
  for (const file of files) {
    const pkg = packageOf(file.path);
    const inSrc = pkg !== undefined && file.path.startsWith(`packages/${pkg}/src/`);
    const isManifest = pkg !== undefined && file.path === `packages/${pkg}/package.json`;
    if (isManifest) {
      if (!PRODUCTION.includes(pkg)) continue;
      const deps = Object.keys((JSON.parse(file.text) as { dependencies?: object }).dependencies ?? {});
      for (const dep of deps.filter((d) => NOT_IN_PRODUCTION.includes(d)))
        problems.push(`${file.path}: production package depends on ${dep}`);
      continue;
    }
    for (const spec of specifiers(file.text)) {
      const bare = spec.replace(/^node:/, '');
      if (inSrc && pkg !== 'hal' && HOST_MODULES.includes(bare))
        problems.push(`${file.path}: imports ${spec} (only packages/hal touches the host: use localFs or HostRoot)`);
      if (inSrc && BUNDLED.includes(pkg) && CLASSIC_ZOD.includes(spec))
        problems.push(`${file.path}: imports ${spec} (a binary validates with zod/mini)`);
      if (inSrc && PRODUCTION.includes(pkg)) {
        const target = /^@gpucc\/([^/]+)/.exec(spec)?.[1];
        if (target && NOT_IN_PRODUCTION.includes(`@gpucc/${target}`))
          problems.push(`${file.path}: production code imports ${spec}`);
        if (target && OPERANDS.includes(pkg) && OPERANDS.includes(target) && target !== pkg)
          problems.push(`${file.path}: operand ${pkg} imports operand ${spec}`);
      }
      if (!inSrc && spec.startsWith('.')) {
        const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(file.path), spec));
        const target = packageOf(resolved);
        if (target && target !== pkg && resolved.startsWith(`packages/${target}/`))
          problems.push(`${file.path}: reaches into ${resolved} by path (import @gpucc/${target} by name)`);
      }
    }
  }
  return problems;
}

/** The repository's TypeScript and JavaScript sources and package manifests (no node_modules, no dist). */
function repositoryFiles(): SourceFile[] {
  const files: SourceFile[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(path.join(REPO, dir), { withFileTypes: true })) {
      if (['node_modules', 'dist', '.tools', '.turbo', 'coverage'].includes(entry.name) || entry.name.startsWith('.'))
        continue;
      const rel = dir ? `${dir}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(rel);
      // This file's samples break the rules on purpose.
      else if (rel === 'test/boundaries.test.ts') continue;
      else if (/\.(ts|mjs|js)$/.test(entry.name) || entry.name === 'package.json')
        files.push({ path: rel, text: readFileSync(path.join(REPO, rel), 'utf8') });
    }
  };
  for (const top of ['packages', 'test', 'bench', 'scripts']) walk(top);
  return files;
}

describe('package boundaries', () => {
  it('the checker finds each kind of violation in a sample', () => {
    const sample: SourceFile[] = [
      {
        path: 'packages/vfio-manager/src/x.ts',
        text: "import fs from 'node:fs';\nimport { a } from '@gpucc/kata-manager';",
      },
      { path: 'packages/sim/src/y.ts', text: "import { spawn } from 'child_process';" },
      { path: 'packages/daemon/src/z.ts', text: "const sim = await import('@gpucc/sim');" },
      { path: 'packages/gpucc/src/cli.ts', text: "import * as z from 'zod';" },
      { path: 'packages/cc-manager/package.json', text: '{"dependencies":{"@gpucc/testbed":"workspace:*"}}' },
      {
        path: 'packages/kata-manager/test/t.test.ts',
        text: "import { bind } from '../../vfio-manager/src/engine.js';",
      },
      { path: 'test/u.test.ts', text: "export { x } from '../packages/sim/src/kernel/index.js';" },
      // Allowed: the hal itself, a package's own src, names, and devDependencies.
      { path: 'packages/hal/src/fs/local-fs.ts', text: "import * as fs from 'node:fs';" },
      { path: 'packages/kata-manager/test/v.test.ts', text: "import { x } from '../src/x.js';\nimport '@gpucc/sim';" },
      { path: 'packages/vfio-manager/package.json', text: '{"devDependencies":{"@gpucc/sim":"workspace:*"}}' },
      { path: 'packages/daemon/src/config/c.ts', text: "import * as z from 'zod/mini';" },
      { path: 'packages/sim/src/cli.ts', text: "import * as z from 'zod';" },
    ];
    expect(boundaryViolations(sample)).toEqual([
      'packages/vfio-manager/src/x.ts: imports node:fs (only packages/hal touches the host: use localFs or HostRoot)',
      'packages/vfio-manager/src/x.ts: operand vfio-manager imports operand @gpucc/kata-manager',
      'packages/sim/src/y.ts: imports child_process (only packages/hal touches the host: use localFs or HostRoot)',
      'packages/daemon/src/z.ts: production code imports @gpucc/sim',
      'packages/gpucc/src/cli.ts: imports zod (a binary validates with zod/mini)',
      'packages/cc-manager/package.json: production package depends on @gpucc/testbed',
      'packages/kata-manager/test/t.test.ts: reaches into packages/vfio-manager/src/engine.js by path (import @gpucc/vfio-manager by name)',
      'test/u.test.ts: reaches into packages/sim/src/kernel/index.js by path (import @gpucc/sim by name)',
    ]);
  });

  it('the repository has none', () => {
    const files = repositoryFiles();
    expect(files.filter((f) => f.path.startsWith('packages/')).length).toBeGreaterThan(250);
    expect(boundaryViolations(files)).toEqual([]);
  });
});
