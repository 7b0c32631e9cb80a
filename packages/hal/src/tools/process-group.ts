/**
 * Tools run in their own process group so that a timeout can kill the whole tree: a wrapper script
 * killed alone leaves its children holding the output pipes, and the run would not end until they do.
 * Groups still alive when gpucc exits are killed too (a detached group outlives its parent otherwise).
 */

const live = new Set<number>();
let exitHookInstalled = false;

/** Sends a signal to every process of the group led by `pid`; false when the group is gone. */
export function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false; // ESRCH: every member has exited
  }
}

export function trackGroup(pid: number): void {
  live.add(pid);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const leader of live) signalGroup(leader, 'SIGKILL');
    });
  }
}

export function untrackGroup(pid: number): void {
  live.delete(pid);
}
