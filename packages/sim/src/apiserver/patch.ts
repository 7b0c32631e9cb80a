import type { Json, JsonObject } from './objects.js';

/**
 * The patch formats a Kubernetes client sends, applied to plain JSON. Pure: object and patch in,
 * new object out (or an error message for a 4xx answer).
 */

const isObject = (v: Json | undefined): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** RFC 7386 JSON merge patch: objects merge, null removes a key, everything else replaces. */
export function mergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return patch;
  const out: JsonObject = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key] ?? null, value);
  }
  return out;
}

export class PatchError extends Error {
  constructor(
    readonly code: 400 | 409 | 422,
    message: string,
  ) {
    super(message);
  }
}

interface Operation {
  op: string;
  path: string;
  value?: Json;
  from?: string;
}

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new PatchError(400, `invalid JSON pointer ${JSON.stringify(path)}`);
  return path
    .slice(1)
    .split('/')
    .map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'));
}

/** RFC 6902 JSON patch: add, remove, replace, test (move and copy are not needed by any gpucc client). */
export function jsonPatch(target: Json, operations: Json): Json {
  if (!Array.isArray(operations)) throw new PatchError(400, 'a JSON patch is an array of operations');
  let doc = structuredClone(target);
  for (const raw of operations) {
    const op = raw as unknown as Operation;
    if (!isObject(raw) || typeof op.op !== 'string' || typeof op.path !== 'string') {
      throw new PatchError(400, `invalid JSON patch operation ${JSON.stringify(raw)}`);
    }
    const parts = pointer(op.path);
    if (parts.length === 0) {
      if (op.op === 'test') {
        if (JSON.stringify(doc) !== JSON.stringify(op.value)) throw new PatchError(422, 'test failed at the root');
        continue;
      }
      if (op.op === 'replace' || op.op === 'add') doc = structuredClone(op.value ?? null);
      else throw new PatchError(422, `cannot ${op.op} the whole object`);
      continue;
    }
    const last = parts[parts.length - 1]!;
    let parent: Json = doc;
    for (const part of parts.slice(0, -1)) {
      const next: Json | undefined = Array.isArray(parent)
        ? parent[Number(part)]
        : isObject(parent)
          ? parent[part]
          : undefined;
      if (next === undefined) throw new PatchError(422, `path ${op.path} does not exist`);
      parent = next;
    }
    const has = Array.isArray(parent) ? Number(last) < parent.length : isObject(parent) && last in parent;
    switch (op.op) {
      case 'test': {
        const current = Array.isArray(parent) ? parent[Number(last)] : isObject(parent) ? parent[last] : undefined;
        if (JSON.stringify(current) !== JSON.stringify(op.value)) {
          throw new PatchError(422, `test failed at ${op.path}`);
        }
        break;
      }
      case 'remove':
        if (!has) throw new PatchError(422, `cannot remove ${op.path}: it does not exist`);
        if (Array.isArray(parent)) parent.splice(Number(last), 1);
        else delete (parent as JsonObject)[last];
        break;
      case 'replace':
      case 'add':
        if (op.op === 'replace' && !has) throw new PatchError(422, `cannot replace ${op.path}: it does not exist`);
        if (op.value === undefined) throw new PatchError(400, `${op.op} at ${op.path} needs a value`);
        if (Array.isArray(parent)) {
          const index = last === '-' ? parent.length : Number(last);
          if (op.op === 'replace') parent[index] = op.value;
          else parent.splice(index, 0, op.value);
        } else if (isObject(parent)) parent[last] = op.value;
        else throw new PatchError(422, `cannot add under ${op.path}: the parent is not an object`);
        break;
      default:
        throw new PatchError(400, `JSON patch operation ${JSON.stringify(op.op)} is not supported`);
    }
  }
  return doc;
}
