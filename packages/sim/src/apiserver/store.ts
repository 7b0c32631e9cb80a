import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { GpuccError, isLabelKey, isLabelValue, localFs } from '@gpucc/hal';
import { readNodeSpec } from '../node/state.js';
import { type Json, type JsonObject, labelsOf, metaOf, newNodeObject } from './objects.js';
import { PatchError } from './patch.js';
import { APISERVER_DIR, DEFAULT_NODE_NAME, EVENTS_FILE, STORE_FILE, STORE_LOCK } from './paths.js';

/**
 * The fake API server's state, persisted in the simulated node (`.gpucc-sim/apiserver/`) so that
 * other processes (`gpucc-sim label`) change it and the server's watchers see the change. One node,
 * a global resourceVersion counter, a bounded history of node changes (older watches get 410 Gone),
 * and the events in a JSON-lines file. Every change is made under a lock directory.
 */

export type ChangeType = 'ADDED' | 'MODIFIED';

export interface HistoryEntry {
  rv: number;
  type: ChangeType;
  object: JsonObject;
}

export interface StoreData {
  version: 1;
  /** The last resourceVersion handed out (node changes and events share the counter, as in etcd). */
  resourceVersion: number;
  /** A watch from a version below this one misses changes: it gets 410 Gone. */
  compactedRv: number;
  historyLimit: number;
  node: JsonObject;
  history: HistoryEntry[];
}

export const DEFAULT_HISTORY_LIMIT = 1000;

const abs = (root: string, rel: string) => path.join(root, rel);

export function storeExists(root: string): boolean {
  return localFs.kindOf(abs(root, STORE_FILE)) === 'file';
}

export function readStore(root: string): StoreData {
  let text: string;
  try {
    text = localFs.readText(abs(root, STORE_FILE));
  } catch (error) {
    if (localFs.isMissing(error)) {
      throw new GpuccError('ERR_GPUCC_SIM_NOT_SIMULATED', `${root} has no fake API server state`, {
        hint: `start one with: gpucc-sim apiserver ${root} (or set a label with gpucc-sim label ${root} KEY=VALUE)`,
        details: { dir: root },
      });
    }
    throw error;
  }
  const data = JSON.parse(text) as StoreData;
  if (data?.version !== 1 || typeof data.node !== 'object') {
    throw new GpuccError('ERR_GPUCC_STATE_FILE_INVALID', `${abs(root, STORE_FILE)} is not a fake API server store`, {
      hint: `remove ${abs(root, APISERVER_DIR)} to start over`,
      details: { path: STORE_FILE },
    });
  }
  return data;
}

function writeStore(root: string, data: StoreData): void {
  const file = abs(root, STORE_FILE);
  const temp = `${file}.${process.pid}.tmp`;
  localFs.writeFileSync(temp, `${JSON.stringify(data)}\n`);
  localFs.renameSync(temp, file);
}

// ---- lock ----------------------------------------------------------------------------------------

const LOCK_STALE_MS = 10_000;
const LOCK_WAIT_MS = 10_000;
const SLEEP_CELL = new Int32Array(new SharedArrayBuffer(4));

/** Runs `fn` holding the store's lock (exclusive mkdir; a lock older than 10 s is a crashed holder's). */
export function withStoreLock<T>(root: string, fn: () => T): T {
  const lock = abs(root, STORE_LOCK);
  const since = Date.now();
  localFs.makeDir(abs(root, APISERVER_DIR), 0o755);
  while (!localFs.tryMakeDirExclusive(lock)) {
    const age = localFs.ageMs(lock);
    if (age !== undefined && age > LOCK_STALE_MS) {
      localFs.removeSync(lock);
      continue;
    }
    if (Date.now() - since > LOCK_WAIT_MS) {
      throw new GpuccError('ERR_GPUCC_SIM_STATE_LOCKED', `the fake API server store of ${root} stayed locked`, {
        hint: `another gpucc-sim process holds ${STORE_LOCK}; remove it if no such process runs`,
      });
    }
    Atomics.wait(SLEEP_CELL, 0, 0, 2);
  }
  try {
    return fn();
  } finally {
    localFs.removeSync(lock);
  }
}

// ---- creation -------------------------------------------------------------------------------------

export interface EnsureOptions {
  nodeName?: string;
  operatorLabels?: boolean;
  historyLimit?: number;
}

/**
 * The store, created on first use for the simulated node in `root`. An existing store for another
 * node name is refused: one simulated node is one Kubernetes node.
 */
export function ensureStore(root: string, options: EnsureOptions = {}): StoreData {
  return withStoreLock(root, () => {
    if (storeExists(root)) {
      const data = readStore(root);
      const name = metaOf(data.node).name;
      if (options.nodeName !== undefined && options.nodeName !== name) {
        throw new GpuccError(
          'ERR_GPUCC_USAGE',
          `the fake API server of ${root} serves node ${name}, not ${options.nodeName}`,
          {
            hint: `use --node-name ${name}, or remove ${abs(root, APISERVER_DIR)} to start over`,
            details: { node: name },
          },
        );
      }
      if (options.historyLimit !== undefined && options.historyLimit !== data.historyLimit) {
        data.historyLimit = options.historyLimit;
        trimHistory(data);
        writeStore(root, data);
      }
      return data;
    }
    const spec = readNodeSpec(root);
    const node = newNodeObject(options.nodeName ?? DEFAULT_NODE_NAME, spec, {
      operatorLabels: options.operatorLabels ?? true,
      resourceVersion: 1,
    });
    const data: StoreData = {
      version: 1,
      resourceVersion: 1,
      compactedRv: 0,
      historyLimit: options.historyLimit ?? DEFAULT_HISTORY_LIMIT,
      node,
      history: [{ rv: 1, type: 'ADDED', object: node }],
    };
    writeStore(root, data);
    return data;
  });
}

function trimHistory(data: StoreData): void {
  while (data.history.length > data.historyLimit) {
    const dropped = data.history.shift()!;
    data.compactedRv = Math.max(data.compactedRv, dropped.rv);
  }
}

/** Drops the whole history: every watch that resumes from an older version gets 410 Gone. */
export function compactHistory(root: string): StoreData {
  return withStoreLock(root, () => {
    const data = readStore(root);
    data.compactedRv = data.resourceVersion;
    data.history = [];
    writeStore(root, data);
    return data;
  });
}

// ---- node changes ----------------------------------------------------------------------------------

const IMMUTABLE = ['name', 'uid', 'creationTimestamp'] as const;

/**
 * Replaces the node with `change(node)`, as the API server would: immutable fields and label syntax
 * checked (422), an optimistic-concurrency resourceVersion in the patch honoured (409), and nothing
 * written and no version used when nothing changed.
 */
export function updateNode(
  root: string,
  change: (node: JsonObject) => Json,
  options: { expectedRv?: string } = {},
): { node: JsonObject; changed: boolean } {
  return withStoreLock(root, () => {
    const data = readStore(root);
    const current = data.node;
    const meta = metaOf(current);
    if (options.expectedRv !== undefined && options.expectedRv !== meta.resourceVersion) {
      throw new PatchError(
        409,
        `Operation cannot be fulfilled on nodes "${meta.name}": the object has been modified; please apply your changes to the latest version and try again`,
      );
    }
    const next = change(structuredClone(current));
    if (typeof next !== 'object' || next === null || Array.isArray(next)) {
      throw new PatchError(422, 'the patched node is not an object');
    }
    const nextMeta = (next.metadata ?? {}) as JsonObject;
    for (const field of IMMUTABLE) {
      if (nextMeta[field] !== meta[field]) {
        throw new PatchError(
          422,
          `Node "${meta.name}" is invalid: metadata.${field}: Invalid value: field is immutable`,
        );
      }
    }
    for (const [key, value] of Object.entries(labelsOf(next))) {
      if (!isLabelKey(key))
        throw new PatchError(
          422,
          `Node "${meta.name}" is invalid: metadata.labels: Invalid value: "${key}": invalid label key`,
        );
      if (!isLabelValue(value)) {
        throw new PatchError(
          422,
          `Node "${meta.name}" is invalid: metadata.labels: Invalid value: "${String(value)}": invalid label value`,
        );
      }
    }
    nextMeta.resourceVersion = meta.resourceVersion; // a patch cannot set it; compare without it
    if (JSON.stringify(next) === JSON.stringify(current)) return { node: current, changed: false };
    data.resourceVersion++;
    nextMeta.resourceVersion = String(data.resourceVersion);
    data.node = next;
    data.history.push({ rv: data.resourceVersion, type: 'MODIFIED', object: next });
    trimHistory(data);
    writeStore(root, data);
    return { node: next, changed: true };
  });
}

/** `key=value` sets, `key-` removes; both checked as kubectl would before anything is written. */
export function parseLabelArgs(args: readonly string[]): Record<string, string | null> {
  const changes: Record<string, string | null> = {};
  for (const arg of args) {
    const remove = arg.endsWith('-') && !arg.includes('=');
    const [key, ...rest] = remove ? [arg.slice(0, -1)] : arg.split('=');
    const value = remove ? null : rest.join('=');
    if (!remove && rest.length === 0) {
      throw new GpuccError('ERR_GPUCC_USAGE', `${JSON.stringify(arg)} is neither key=value nor key-`, {
        hint: 'e.g. gpucc-sim label DIR nvidia.com/cc.mode=on, or nvidia.com/cc.mode- to remove it',
      });
    }
    if (!key || !isLabelKey(key)) {
      throw new GpuccError('ERR_GPUCC_INVALID_LABEL_KEY', `invalid label key ${JSON.stringify(key ?? '')}`, {
        hint: 'a key is [prefix/]name: a DNS-subdomain prefix, a name of 1-63 alphanumerics with - _ . inside',
        details: { key },
      });
    }
    if (value !== null && !isLabelValue(value)) {
      throw new GpuccError('ERR_GPUCC_INVALID_LABEL_VALUE', `invalid label value ${JSON.stringify(value)} for ${key}`, {
        hint: 'a label value is empty or at most 63 characters, alphanumeric at both ends with only - _ . inside',
        details: { key, value },
      });
    }
    changes[key] = value;
  }
  return changes;
}

/** What `gpucc-sim label` does: one merge of these labels into the node (the server's watchers see it). */
export function setLabels(root: string, changes: Record<string, string | null>): JsonObject {
  ensureStore(root);
  const { node } = updateNode(root, (n) => {
    const labels = { ...labelsOf(n) };
    for (const [key, value] of Object.entries(changes)) {
      if (value === null) delete labels[key];
      else labels[key] = value;
    }
    (n.metadata as JsonObject).labels = labels;
    return n;
  });
  return node;
}

export function nodeLabels(root: string): Record<string, string> {
  return { ...labelsOf(readStore(root).node) };
}

// ---- events ---------------------------------------------------------------------------------------

/** Stores an event as the API server would: name (or generateName), uid, resourceVersion, timestamp. */
export function createEvent(root: string, namespace: string, body: JsonObject): JsonObject {
  return withStoreLock(root, () => {
    const data = readStore(root);
    const meta = { ...((body.metadata ?? {}) as JsonObject) };
    const generate = typeof meta.generateName === 'string' ? meta.generateName : undefined;
    if (typeof meta.name !== 'string' || meta.name === '') {
      if (!generate)
        throw new PatchError(422, 'Event is invalid: metadata.name: Required value: name or generateName is required');
      meta.name = `${generate}${randomUUID().slice(0, 5)}`;
    }
    if (meta.namespace !== undefined && meta.namespace !== namespace) {
      throw new PatchError(
        400,
        `the namespace of the object (${String(meta.namespace)}) does not match the namespace on the request (${namespace})`,
      );
    }
    if (
      listEvents(root).some((e) => metaOf(e).name === meta.name && (e.metadata as JsonObject).namespace === namespace)
    ) {
      throw new PatchError(409, `events "${String(meta.name)}" already exists`);
    }
    data.resourceVersion++;
    const event: JsonObject = {
      ...body,
      apiVersion: body.apiVersion ?? 'v1',
      kind: 'Event',
      metadata: {
        ...meta,
        namespace,
        uid: randomUUID(),
        resourceVersion: String(data.resourceVersion),
        creationTimestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      },
    };
    writeStore(root, data);
    localFs.appendText(abs(root, EVENTS_FILE), `${JSON.stringify(event)}\n`);
    return event;
  });
}

export function listEvents(root: string, namespace?: string): JsonObject[] {
  let text: string;
  try {
    text = localFs.readText(abs(root, EVENTS_FILE));
  } catch (error) {
    if (localFs.isMissing(error)) return [];
    throw error;
  }
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as JsonObject)
    .filter((e) => namespace === undefined || (e.metadata as JsonObject).namespace === namespace);
}
