/**
 * Carries out a spec plan through the hal: atomic writes (temp file in the same directory that CDI
 * loaders ignore, fsync, rename, mode 0644, nothing written when the bytes are the same) and removals
 * of our own stale files. Each file is re-checked right before it is touched, so a file another
 * tool put there in the meantime is never replaced or removed.
 */

import { GpuccError, type HostRoot, isGpuccError, messageOf } from '@gpucc/hal';
import type { SpecAction, SpecPlan } from './plan.js';
import { isOwnSpecText } from './spec.js';
import { checkSpecText } from './validate.js';

export const SPEC_FILE_MODE = 0o644;
/** A temp file of a spec this old was left by a writer killed mid-write (a live write takes milliseconds). */
const STALE_TEMP_MS = 60_000;

export type SpecOutcome = 'written' | 'unchanged' | 'removed' | 'refused' | 'failed';

export interface SpecResult {
  fileName: string;
  kind: string | undefined;
  devices: number;
  outcome: SpecOutcome;
  error?: GpuccError;
}

/**
 * Writes one spec: refuses, before anything touches the disk, a text that fails the schema or the
 * CDI rules (ERR_GPUCC_CDI_SPEC_INVALID); then an atomic replace through the hal.
 */
export async function writeSpecFile(sysfs: HostRoot, path: string, content: string): Promise<'written' | 'unchanged'> {
  checkSpecText(content, 'yaml', sysfs.display(path));
  await sysfs.removeStaleTempFiles(path, { olderThanMs: STALE_TEMP_MS });
  return sysfs.writeFileAtomic(path, content, SPEC_FILE_MODE);
}

export async function applySpecPlan(sysfs: HostRoot, plan: SpecPlan): Promise<SpecResult[]> {
  const results: SpecResult[] = [];
  for (const action of plan.actions) results.push(await applyOne(sysfs, plan.dir, action));
  return results;
}

async function applyOne(sysfs: HostRoot, dir: string, action: SpecAction): Promise<SpecResult> {
  const path = `${dir}/${action.fileName}`;
  const base = {
    fileName: action.fileName,
    kind: action.kind,
    devices: action.action === 'remove' ? 0 : action.devices,
  };
  switch (action.action) {
    case 'unchanged':
      return { ...base, outcome: 'unchanged' };
    case 'refuse':
      return { ...base, outcome: 'refused', error: action.error };
    case 'write': {
      const changedHands = stillOursOrAbsent(sysfs, path);
      if (changedHands) return { ...base, outcome: 'refused', error: changedHands };
      try {
        return { ...base, outcome: await writeSpecFile(sysfs, path, action.content) };
      } catch (error) {
        return { ...base, outcome: 'failed', error: asGpuccError(sysfs, path, error) };
      }
    }
    case 'remove': {
      if (!isOwnSpecText(sysfs.readOptional(path))) return { ...base, outcome: 'unchanged' };
      try {
        await sysfs.removeFile(path);
        return { ...base, outcome: 'removed' };
      } catch (error) {
        return { ...base, outcome: 'failed', error: asGpuccError(sysfs, path, error) };
      }
    }
  }
}

/** undefined when the target is absent or still ours; the refusal when someone else's file is there now. */
function stillOursOrAbsent(sysfs: HostRoot, path: string): GpuccError | undefined {
  const type = sysfs.kindOf(path);
  if (type === undefined) return undefined;
  if (type === 'file' && isOwnSpecText(sysfs.readOptional(path))) return undefined;
  return new GpuccError('ERR_GPUCC_CDI_SPEC_NOT_OURS', `${sysfs.display(path)} was just replaced by another writer`, {
    hint: 'run one CDI writer per node: stop the other writer (NVIDIA sandbox-device-plugin, k8s-kata-manager), remove its file, and kata-manager writes its own',
    details: { path, type },
  });
}

function asGpuccError(sysfs: HostRoot, path: string, error: unknown): GpuccError {
  if (isGpuccError(error)) return error;
  return new GpuccError('ERR_GPUCC_ATOMIC_WRITE_FAILED', `cannot update ${sysfs.display(path)}: ${messageOf(error)}`, {
    hint: 'check that the CDI directory is writable; the previous file was kept',
    cause: error,
    details: { path },
  });
}
