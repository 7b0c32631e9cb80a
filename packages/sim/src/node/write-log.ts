import path from 'node:path';
import { localFs } from '@gpucc/hal';
import { HELD_ACCESS_LOG, WRITE_LOG } from './paths.js';

export interface LoggedWrite {
  t: number;
  pid: number;
  path: string;
  value: string;
  result: string;
}

/** Every sysfs write the simulated kernel received, from every process, oldest first. */
export function readWriteLog(root: string): LoggedWrite[] {
  let text: string;
  try {
    text = localFs.readText(path.join(root, WRITE_LOG));
  } catch (error) {
    if (localFs.isMissing(error)) return [];
    throw error;
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as LoggedWrite);
}

/** The CC-tool calls that reached a device a VM held (see the fake gpu-admin-tools). */
export function readHeldAccesses(root: string): Array<{ t: number; pid: number; device: string; args: string[] }> {
  try {
    return localFs
      .readText(path.join(root, HELD_ACCESS_LOG))
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line));
  } catch (error) {
    if (localFs.isMissing(error)) return [];
    throw error;
  }
}
