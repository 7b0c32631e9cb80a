import type { Command } from 'commander';

/** `gpucc-sim apiserver …` and `gpucc-sim label …` (the fake Kubernetes API server). Filled in with cc-manager. */
export function registerApiServerCommands(_cli: Command, _out: (text: string) => void): void {}
