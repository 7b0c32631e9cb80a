/**
 * An operand's versioned state file under the host root (`var/lib/gpucc/<operand>.json`):
 * `{ "version": 1, "<field>": { "<PCI address>": record } }`, written atomically with the records in
 * address order so that a diff of two runs shows what changed. Only version 1 exists; anything else
 * is refused rather than guessed at, since these files hold what a restart needs to undo or finish.
 */

import { GpuccError } from '../errors/index.js';
import type { Sysfs } from './sysfs.js';

export interface StateFile {
  /** Host path, relative to the root. */
  path: string;
  /** The field that holds the records, e.g. `devices`. */
  field: string;
  /** Whose state, for the error: `vfio-manager`. */
  owner: string;
  /** What the user can do about an invalid file. */
  hint: string;
}

/** The records of a state file; none when the file does not exist. Throws ERR_GPUCC_STATE_FILE_INVALID. */
export function readStateFile<R>(sysfs: Sysfs, file: StateFile): Record<string, R> {
  const text = sysfs.readOptional(file.path);
  if (text === undefined) return {};
  try {
    const parsed = JSON.parse(text) as Record<string, unknown> | null;
    const records = parsed?.[file.field];
    if (parsed?.version !== 1 || typeof records !== 'object' || records === null) throw new Error('unexpected shape');
    return records as Record<string, R>;
  } catch (error) {
    throw new GpuccError(
      'ERR_GPUCC_STATE_FILE_INVALID',
      `${sysfs.display(file.path)} is not a valid ${file.owner} state`,
      {
        hint: file.hint,
        cause: error,
        details: { path: file.path },
      },
    );
  }
}

export async function writeStateFile<R>(sysfs: Sysfs, file: StateFile, records: Record<string, R>): Promise<void> {
  const sorted = Object.fromEntries(Object.entries(records).sort(([a], [b]) => (a < b ? -1 : 1)));
  await sysfs.writeFileAtomic(file.path, `${JSON.stringify({ version: 1, [file.field]: sorted }, null, 2)}\n`, 0o644);
}
