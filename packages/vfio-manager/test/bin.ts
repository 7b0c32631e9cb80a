import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

export const BIN = path.resolve(import.meta.dirname, '../bin/vfio-manager.mjs');
const exec = promisify(execFile);

/** Runs the built vfio-manager binary: its exit code, stdout and stderr. */
export async function vfio(args: string[]) {
  try {
    const { stdout, stderr } = await exec(process.execPath, [BIN, ...args], { timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
