import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

// What the demo prints (scripts/demo.mjs), read the same way by its tests with fake and real peers.

/** The scenario's steps in the summary, each passed. */
export const PASSED_STEPS = [
  /ok .* vfio-manager binds/,
  /ok .*cc\.mode=on:/,
  /ok .* asking for 2 GPUs is refused/,
  /ok .* asks for 1 GPU and gets it/,
  /ok .*cc\.mode=ppcie:/,
  /ok .* the whole node, 8 GPUs and 4 NVSwitches/,
  /ok .*cc\.mode=off:/,
];

/** The pids the demo started (its timeline names each one). */
export function startedPids(stdout: string): number[] {
  return [...stdout.matchAll(/started \S+ \(pid (\d+)\)/g)].map((m) => Number(m[1]));
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits until the running demo's output says `condition`; fails at once if it exited. */
export async function untilOutput(condition: () => boolean, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (child.exitCode !== null) throw new Error(`the demo exited ${child.exitCode} before it was ready`);
    if (Date.now() > deadline) throw new Error('the demo did not get ready in time');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export const DEMO = path.resolve(import.meta.dirname, '../scripts/demo.mjs');

/** The demo running with these arguments (with --keep: until `interrupt`); its stdout as it comes. */
export function startDemo(args: string[]): { child: ChildProcess; stdout: () => string } {
  const child = spawn(process.execPath, [DEMO, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    text += chunk.toString('utf8');
  });
  return { child, stdout: () => text };
}

/** Ctrl-C, as a user stops a kept demo; resolves with its exit code. */
export function interrupt(child: ChildProcess): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.kill('SIGINT');
  return exited;
}
