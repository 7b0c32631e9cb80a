import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { packageBin, tempDir } from './processes.js';

/**
 * A simulated node laid out by `gpucc-sim create`, with its GPUs and NVSwitches bound to vfio-pci by
 * `vfio-manager bind` (both run as processes, as a user runs them): how vfio-manager leaves a node
 * before the device plugin advertises its GPUs and cc-manager switches them.
 */
export function boundNode(prefix: string, profile = 'hgx-h100-8'): string {
  const root = path.join(tempDir(prefix), 'node');
  execFileSync(process.execPath, [packageBin('sim', 'gpucc-sim'), 'create', root, '--profile', profile]);
  execFileSync(process.execPath, [
    packageBin('vfio-manager'),
    'bind',
    '--all',
    '--nvswitches',
    '--host-root',
    root,
    '--load-modules',
    '--modprobe',
    path.join(root, 'usr/sbin/modprobe'),
    '--log-format',
    'json',
  ]);
  return root;
}
