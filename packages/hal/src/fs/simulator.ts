import type { KernelHook } from './host-root.js';

/**
 * What `gpucc-sim create` writes beside a simulated node's tree (relative to its root). A host root
 * other than `/` that has it is a simulated node: its kernel side must be the simulator's.
 */
export const SIMULATED_NODE_MARKER = '.gpucc-sim/node.json';

/** The host tools a simulated node carries in place of the host's own: absolute paths to its fakes. */
export interface SimulatedTools {
  modprobe: string;
  gpuAdminTools: string;
  nvidiaSmi: string;
}

/**
 * What the simulator gives a binary that opens a simulated node. Production code only declares it:
 * the simulator fills the slot at run time (the repository's launch path, or a test's setup), so no
 * production package depends on it, and a deployed binary has no simulator to find.
 */
export interface SimulatorAttachment {
  /** The kernel side of the node at `root`: attribute writes (bind, unbind, reset...) go to it. */
  kernel(root: string): KernelHook;
  tools(root: string): SimulatedTools;
}

export type SimulatorLoader = () => SimulatorAttachment | Promise<SimulatorAttachment>;

// On the global object, not in a module variable: a bundle carries its own copy of the hal, and the
// launcher that attaches the simulator another one. packages/sim/bin/attach.mjs uses the same key.
const SLOT = Symbol.for('gpucc.simulator');

/** Attaches the simulator for this process (undefined detaches it): `load` runs only when a simulated node is opened. */
export function attachSimulator(load: SimulatorLoader | undefined): void {
  (globalThis as { [SLOT]?: SimulatorLoader })[SLOT] = load;
}

/** The attached simulator's loader, or undefined (a deployed binary, a real host). */
export function attachedSimulator(): SimulatorLoader | undefined {
  return (globalThis as { [SLOT]?: SimulatorLoader })[SLOT];
}
