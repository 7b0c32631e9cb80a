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
