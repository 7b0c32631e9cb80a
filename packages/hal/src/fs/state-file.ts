/**
 * An operand's versioned state file under the host root (`var/lib/gpucc/<operand>.json`):
 * `{ "version": 1, "<field>": { "<PCI address>": record }, "<list>": ["<PCI address>", ...] }` (lists
 * optional, omitted when empty), written atomically with the records and lists in address order so
 * that a diff of two runs shows what changed. Only version 1 exists; anything else
 * is refused rather than guessed at, since these files hold what a restart needs to undo or finish.
 */

import { GpuccError } from '../errors/index.js';
import type { HostRoot } from './host-root.js';

export interface StateFile {
  /** Host path, relative to the root. */
  path: string;
  /** The field that holds the records, e.g. `devices`. */
  field: string;
  /** Whose state, for the error: `vfio-manager`. */
  owner: string;
  /** What the user can do about an invalid file. */
  hint: string;
  /** Optional fields that hold a list of strings (e.g. `unbindLocks`). */
  lists?: readonly string[];
}

export interface StateDocument<R> {
  records: Record<string, R>;
  /** Every list the file names in `lists`; empty when absent. */
  lists: Record<string, string[]>;
}

/** The records of a state file; none when the file does not exist. Throws ERR_GPUCC_STATE_FILE_INVALID. */
export function readStateFile<R>(sysfs: HostRoot, file: StateFile): Record<string, R> {
  return readStateDocument<R>(sysfs, file).records;
}

/** The records and lists of a state file; all empty when the file does not exist. */
export function readStateDocument<R>(sysfs: HostRoot, file: StateFile): StateDocument<R> {
  const lists = Object.fromEntries((file.lists ?? []).map((name) => [name, [] as string[]]));
  const text = sysfs.readOptional(file.path);
  if (text === undefined) return { records: {}, lists };
  try {
    const parsed = JSON.parse(text) as Record<string, unknown> | null;
    const records = parsed?.[file.field];
    if (parsed?.version !== 1 || typeof records !== 'object' || records === null) throw new Error('unexpected shape');
    for (const name of file.lists ?? []) {
      const list = parsed[name];
      if (list === undefined) continue;
      if (!Array.isArray(list) || !list.every((item) => typeof item === 'string'))
        throw new Error(`unexpected ${name}`);
      lists[name] = list;
    }
    return { records: records as Record<string, R>, lists };
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

export async function writeStateFile<R>(
  sysfs: HostRoot,
  file: StateFile,
  records: Record<string, R>,
  lists: Record<string, readonly string[]> = {},
): Promise<void> {
  const sorted = Object.fromEntries(Object.entries(records).sort(([a], [b]) => (a < b ? -1 : 1)));
  const document: Record<string, unknown> = { version: 1, [file.field]: sorted };
  for (const name of file.lists ?? []) {
    const list = lists[name];
    if (list && list.length > 0) document[name] = [...list].sort();
  }
  await sysfs.writeFileAtomic(file.path, `${JSON.stringify(document, null, 2)}\n`, 0o644);
}
