import v8 from 'node:v8';

/**
 * The V8 flag a daemon sets for itself as its first act: no optimizing compiler, its code runs in the
 * interpreter and V8's baseline compiler (Sparkplug). A daemon's work is I/O and small reconciles;
 * TurboFan, which V8 started on the hot loops of the start-up discovery, only touched the optimizing
 * compiler's code pages and its memory. Measured with `pnpm bench` and by hand on hgx-h100-8
 * (issue 17): kata-manager idle 62.3 → 58.1 MB; sandbox-device-plugin idle 61 → 57 MB and after
 * 5,000 Allocate calls 67.7 → 61.2 MB, one caller's Allocate unchanged (0.83–0.95 ms either way),
 * 16 concurrent callers 3.0–3.5 → 4.1–4.4 ms.
 *
 * Not in NODE_OPTIONS (with DAEMON_NODE_OPTIONS of scripts/bundle.mjs), which refuses V8's
 * `--max-opt`, and a single executable of Node 20 takes no Node options of its own: hence at run
 * time, which V8 reads each time it decides whether to optimize a function.
 */
export const DAEMON_V8_FLAGS = '--max-opt=1';

export function capV8Tiers(): void {
  v8.setFlagsFromString(DAEMON_V8_FLAGS);
}
