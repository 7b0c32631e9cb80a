import type { Command } from 'commander';

/** `gpucc-sim kubelet …` commands (the fake kubelet). Filled in with the device plugin. */
export function registerKubeletCommands(_cli: Command, _out: (text: string) => void): void {}
