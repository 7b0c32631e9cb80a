import path from 'node:path';
import { localFs } from '@gpucc/hal';
import { WRITE_LOG } from './paths.js';

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
