import v8 from 'node:v8';

/**
 * The V8 flag a reconciling daemon (cc-manager, vfio-manager, kata-manager) sets for itself as its
 * first act: no optimizing compiler, its code runs in the interpreter and V8's baseline compiler
 * (Sparkplug). Their work is I/O and small reconciles; TurboFan, which V8 started on the hot loops of
 * the start-up discovery, only touched the optimizing compiler's code pages and its memory: kata-manager
 * idle 62.3 → 58.1 MB on hgx-h100-8 (issue 17). The device plugin does not set it: its Allocate path
 * has a latency target, and without TurboFan 16 concurrent callers took 3.4 ms instead of 2.4 (one
 * caller the same, 0.8 ms), for 6 MB less memory after 5,000 calls (`pnpm bench`, both ways).
 *
 * Not in NODE_OPTIONS (with DAEMON_NODE_OPTIONS of scripts/bundle.mjs), which refuses V8's
 * `--max-opt`, and a single executable of Node 20 takes no Node options of its own: hence at run
 * time, which V8 reads each time it decides whether to optimize a function.
 */
export const DAEMON_V8_FLAGS = '--max-opt=1';

export function capV8Tiers(): void {
  v8.setFlagsFromString(DAEMON_V8_FLAGS);
}
