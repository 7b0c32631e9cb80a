/**
 * What to do in the CDI directory so that it holds exactly the specs the node needs. Pure: the
 * desired specs and the directory as observed in, a list of actions out. kata-manager replaces and
 * removes only files it wrote (their first line is its header); another tool's file is reported,
 * never touched.
 */

import { GpuccError } from '@gpucc/hal';
import type { CdiDirEntry } from './observe.js';
import { isOwnSpecText } from './spec.js';
import { parseSpecText } from './validate.js';

/** A spec the node needs, rendered and validated (or refused by validation). */
export interface DesiredSpec {
  fileName: string;
  kind: string;
  deviceNames: string[];
  /** The YAML to write; undefined when validation refused it (then `error` says why). */
  content?: string;
  error?: GpuccError;
}

export type SpecAction =
  | { action: 'write'; fileName: string; kind: string; devices: number; content: string; why: 'new' | 'changed' }
  | { action: 'unchanged'; fileName: string; kind: string; devices: number }
  | { action: 'remove'; fileName: string; kind: string | undefined; why: string }
  | { action: 'refuse'; fileName: string; kind: string; devices: number; error: GpuccError };

/** Another spec file in the same directory that declares devices we publish: both become unresolvable. */
export interface SpecConflict {
  kind: string;
  devices: string[];
  ours: string;
  theirs: string;
}

export interface SpecPlan {
  /** Host path of the CDI directory, e.g. `var/run/cdi`. */
  dir: string;
  actions: SpecAction[];
  conflicts: SpecConflict[];
}

export function planSpecs(dir: string, desired: readonly DesiredSpec[], entries: readonly CdiDirEntry[]): SpecPlan {
  const existing = new Map(entries.map((e) => [e.name, e]));
  const wanted = new Set(desired.map((d) => d.fileName));
  const conflicts = findConflicts(desired, entries);
  const writes: SpecAction[] = [];
  for (const spec of desired) {
    const devices = spec.deviceNames.length;
    const current = existing.get(spec.fileName);
    const base = { fileName: spec.fileName, kind: spec.kind, devices };
    // The coexistence rule (README "Another CDI writer on the node"): devices another writer's file
    // already declares are never declared again, which would make both unresolvable.
    const conflict = conflicts.find((c) => c.ours === spec.fileName);
    if (spec.content === undefined) {
      writes.push({ action: 'refuse', ...base, error: spec.error! });
    } else if (current !== undefined && (current.type !== 'file' || !isOwnSpecText(current.text))) {
      writes.push({ action: 'refuse', ...base, error: notOurs(dir, spec.fileName, current) });
    } else if (conflict !== undefined) {
      writes.push({ action: 'refuse', ...base, error: conflictError(dir, conflict) });
    } else if (current?.text === spec.content) {
      writes.push({ action: 'unchanged', ...base });
    } else {
      writes.push({ action: 'write', ...base, content: spec.content, why: current === undefined ? 'new' : 'changed' });
    }
  }
  // Removals after writes: on an alias change the new kind exists before the old one goes.
  const removals: SpecAction[] = entries
    .filter((e) => e.type === 'file' && isOwnSpecText(e.text) && !wanted.has(e.name) && e.name.endsWith('.yaml'))
    .map((e) => ({
      action: 'remove',
      fileName: e.name,
      kind: kindOf(e.text),
      why: 'no VFIO device of its kind is left (device unbound or gone, or the alias changed)',
    }));
  return { dir, actions: [...writes, ...removals], conflicts };
}

/** A file of another writer that shares a kind and device names with one of ours. */
function findConflicts(desired: readonly DesiredSpec[], entries: readonly CdiDirEntry[]): SpecConflict[] {
  const conflicts: SpecConflict[] = [];
  const ownNames = new Set(desired.map((d) => d.fileName));
  for (const entry of entries) {
    // Our own files, and a foreign file at one of our names (refused above), are not conflicts.
    if (entry.text === undefined || isOwnSpecText(entry.text) || ownNames.has(entry.name)) continue;
    for (const spec of desired) {
      if (!entry.text.includes(spec.kind)) continue; // cheap test before parsing
      const theirs = foreignDevices(entry, spec.kind);
      const shared = spec.deviceNames.filter((n) => theirs.has(n));
      if (shared.length > 0)
        conflicts.push({ kind: spec.kind, devices: shared, ours: spec.fileName, theirs: entry.name });
    }
  }
  return conflicts;
}

function foreignDevices(entry: CdiDirEntry, kind: string): Set<string> {
  try {
    const spec = parseSpecText(entry.text!, entry.name.endsWith('.json') ? 'json' : 'yaml') as {
      kind?: unknown;
      devices?: unknown;
    };
    if (spec?.kind !== kind || !Array.isArray(spec.devices)) return new Set();
    return new Set(spec.devices.map((d: { name?: unknown }) => String(d?.name)));
  } catch {
    return new Set(); // a file no loader can read declares nothing
  }
}

function kindOf(text: string | undefined): string | undefined {
  const match = /^kind:\s*"?([^"\s]+)"?\s*$/m.exec(text ?? '');
  return match?.[1];
}

function notOurs(dir: string, fileName: string, entry: CdiDirEntry): GpuccError {
  const path = `/${dir}/${fileName}`;
  const what = entry.type === 'file' ? 'was not written by kata-manager' : `is a ${entry.type ?? 'missing file'}`;
  return new GpuccError('ERR_GPUCC_CDI_SPEC_NOT_OURS', `${path} ${what}; it is left alone`, {
    hint: 'run one CDI writer per node: stop the other writer (NVIDIA sandbox-device-plugin, k8s-kata-manager), remove its file, and kata-manager writes its own',
    details: { path, type: entry.type },
  });
}

/** Whether carrying out the plan leaves every spec true (no refusal, no conflict). */
export function planIsClean(plan: SpecPlan): boolean {
  return plan.conflicts.length === 0 && plan.actions.every((a) => a.action !== 'refuse');
}

export function conflictError(dir: string, conflict: SpecConflict): GpuccError {
  const names = conflict.devices.map((n) => `${conflict.kind}=${n}`).join(', ');
  return new GpuccError(
    'ERR_GPUCC_CDI_DEVICE_CONFLICT',
    `/${dir}/${conflict.theirs} (another CDI writer) already declares ${names}: kata-manager does not declare them again in ${conflict.ours}, as runtimes drop devices declared twice`,
    {
      hint: `run one CDI writer per device: stop the tool that writes /${dir}/${conflict.theirs} (e.g. the GPU Operator's kata sandbox device plugin: kataSandboxDevicePlugin.enabled=false) and remove the file; kata-manager then writes ${conflict.ours}`,
      details: { kind: conflict.kind, devices: conflict.devices, ours: conflict.ours, theirs: conflict.theirs },
    },
  );
}
