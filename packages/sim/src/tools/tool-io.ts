import type { HostRoot } from '@gpucc/hal';
import { openSimulatedHost } from '../kernel/index.js';

/** Where a fake tool prints: the process's streams when installed, a buffer in unit tests. */
export interface ToolIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

/** An exit status, or `hang`: the executable must then never exit (the `tool-hang` fault). */
export type ToolOutcome = number | 'hang';

/** What a fake tool needs from the outside world, injectable so tests need neither clocks nor sleeps. */
export interface ToolDeps {
  now: () => Date;
  sleep: (ms: number) => Promise<void>;
  /** The HostRoot whose writes reach the kernel simulator (a reset must go through it, as on a host). */
  openSysfs: (root: string) => HostRoot;
}

export function defaultToolDeps(overrides: Partial<ToolDeps> = {}): ToolDeps {
  return {
    now: () => new Date(),
    sleep: (ms) => (ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve()),
    openSysfs: (root) => openSimulatedHost(root),
    ...overrides,
  };
}

/** A ToolIo that collects everything, plus both streams interleaved as a terminal would show them. */
export function bufferIo(): ToolIo & { out: string; err: string; merged: string } {
  const io = {
    out: '',
    err: '',
    merged: '',
    stdout(text: string) {
      io.out += text;
      io.merged += text;
    },
    stderr(text: string) {
      io.err += text;
      io.merged += text;
    },
  };
  return io;
}
