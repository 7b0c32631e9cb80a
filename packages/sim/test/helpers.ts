import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, vi } from 'vitest';
import { openSimulatedSysfs, stopKernel } from '../src/kernel/index.js';
import { createNode } from '../src/node/create.js';
import type { ProfileOptions } from '../src/profiles/profiles.js';
import { installFakeTools } from '../src/tools/index.js';

const made: string[] = [];
const nodes: string[] = [];

/** A fresh temp directory (tmpfs when the machine has one: simulated nodes are thousands of files). */
export function tempDir(prefix = 'gpucc-test-'): string {
  const base = process.platform === 'linux' ? '/dev/shm' : os.tmpdir();
  let dir: string;
  try {
    dir = mkdtempSync(path.join(base, prefix));
  } catch {
    dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  }
  made.push(dir);
  return dir;
}

/** A node whose kernel process (started by its first write) is stopped after the test: none outlives it. */
export function trackNode(root: string): string {
  nodes.push(root);
  return root;
}

afterEach(async () => {
  for (const root of nodes.splice(0)) await stopKernel(root);
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/**
 * A simulated node of the given profile and a Sysfs on it whose writes go through the kernel
 * simulator: in this process by default (operand unit tests: no process to start), or the node's
 * kernel process (`process`: the kernel tests, which hold it to what writers see on a node).
 */
export function simNode(
  profile: string,
  options: ProfileOptions = {},
  kernel: 'process' | 'in-process' = 'in-process',
) {
  const root = path.join(tempDir(), 'node');
  const { node } = createNode(root, profile, options, installFakeTools);
  trackNode(root);
  const sysfs = openSimulatedSysfs(root, { kernel });
  return { root, node, sysfs };
}

/** A CLI's `main(argv, out)`: what gpucc-sim and the operands export. */
export type CliMain = (argv: string[], out: (text: string) => void) => Promise<number>;

/** Runs a CLI in-process as a user runs it: its stdout (through `out`), its stderr and its exit code. */
export async function captureCli(main: CliMain, name: string, args: string[]) {
  let out = '';
  let err = '';
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    err += String(chunk);
    return true;
  });
  try {
    const code = await main(['node', name, ...args], (t) => {
      out += t;
    });
    return { code, out, err };
  } finally {
    spy.mockRestore();
  }
}
