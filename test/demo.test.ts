import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const DEMO = path.resolve(import.meta.dirname, '../scripts/demo.mjs');

describe('the README demo', () => {
  it('walks every step on a simulated node and passes', async () => {
    const { stdout } = await run(process.execPath, [DEMO], { timeout: 60_000 });
    expect(stdout).toMatch(/demo passed/);
    expect(stdout).not.toMatch(/^ {2}FAIL /m);
    expect(stdout).toMatch(/CC mode is on after the reset/);
  });

  it('exits non-zero when a step fails (unknown profile)', async () => {
    const failed = await run(process.execPath, [DEMO, '--profile', 'no-such-profile'], { timeout: 60_000 }).then(
      () => undefined,
      (e: { code: number; stderr: string; stdout: string }) => e,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toMatch(/ERR_GPUCC_SIM_UNKNOWN_PROFILE/);
    expect(failed?.stdout).toMatch(/demo FAILED/);
  });
});
