/**
 * The CDI rules that the official JSON schema does not enforce but the Go loader (containerd, CRI-O,
 * podman, Kata) does (docs/facts/cdi.md#what-the-schema-does-not-check): names, versions, non-empty edits, unique
 * names, unknown fields. Pure: a parsed spec in, a list of problems out.
 */

import { isCdiName, isLabelKey, parseCdiKind } from '@gpucc/hal';

export interface SpecProblem {
  /** JSON pointer into the spec (`/devices/3/name`); `` for the whole spec. */
  path: string;
  message: string;
}

/** Every version the CDI libraries know, oldest first (specs-go/version.go). */
export const KNOWN_CDI_VERSIONS = [
  '0.1.0',
  '0.2.0',
  '0.3.0',
  '0.4.0',
  '0.5.0',
  '0.6.0',
  '0.7.0',
  '0.8.0',
  '1.0.0',
  '1.1.0',
] as const;

const HOOK_NAMES = new Set(['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop']);
const DEVICE_NODE_TYPES = new Set(['', 'b', 'c', 'u', 'p']);
const MAX_ANNOTATIONS_BYTES = 256 * 1024;

// The fields of each Go struct: the loader rejects any other (strict decoding).
const FIELDS = {
  spec: ['cdiVersion', 'kind', 'annotations', 'devices', 'containerEdits'],
  device: ['name', 'annotations', 'containerEdits'],
  edits: ['env', 'deviceNodes', 'hooks', 'mounts', 'intelRdt', 'additionalGids', 'netDevices'],
  deviceNode: ['path', 'hostPath', 'type', 'major', 'minor', 'fileMode', 'permissions', 'uid', 'gid'],
  mount: ['hostPath', 'containerPath', 'options', 'type'],
  hook: ['hookName', 'path', 'args', 'env', 'timeout'],
  intelRdt: ['closID', 'l3CacheSchema', 'memBwSchema', 'schemata', 'enableMonitoring'],
  netDevice: ['hostInterfaceName', 'name'],
} as const;

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const listOf = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const nonEmptyString = (v: unknown): boolean => typeof v === 'string' && v.length > 0;

/** `0.5.0` or `v0.5.0` as [major, minor, patch]; undefined when it is not a version at all. */
export function parseCdiVersion(text: unknown): [number, number, number] | undefined {
  if (typeof text !== 'string') return undefined;
  const match = /^v?(\d+)\.(\d+)\.(\d+)$/.exec(text);
  return match ? [Number(match[1]), Number(match[2]), Number(match[3])] : undefined;
}

function compareVersions(a: string, b: string): number {
  const [x, y] = [parseCdiVersion(a)!, parseCdiVersion(b)!];
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return 0;
}

/** The lowest cdiVersion the content of a spec needs (docs/facts/cdi.md#versions); what a writer should emit. */
export function minimumCdiVersion(spec: unknown): string {
  if (!isObject(spec)) return '0.3.0';
  let minimum = '0.3.0';
  const need = (version: string) => {
    if (compareVersions(version, minimum) > 0) minimum = version;
  };
  const editsNeed = (edits: unknown) => {
    if (!isObject(edits)) return;
    if (listOf(edits.mounts).some((m) => isObject(m) && m.type !== undefined)) need('0.4.0');
    if (listOf(edits.deviceNodes).some((n) => isObject(n) && n.hostPath !== undefined)) need('0.5.0');
    if (edits.intelRdt !== undefined || edits.additionalGids !== undefined) need('0.7.0');
    if (
      isObject(edits.intelRdt) &&
      (edits.intelRdt.schemata !== undefined || edits.intelRdt.enableMonitoring !== undefined)
    )
      need('1.1.0');
    if (edits.netDevices !== undefined) need('1.1.0');
  };
  if (spec.annotations !== undefined) need('0.6.0');
  if (typeof spec.kind === 'string' && spec.kind.slice(spec.kind.indexOf('/') + 1).includes('.')) need('0.6.0');
  editsNeed(spec.containerEdits);
  for (const device of listOf(spec.devices)) {
    if (!isObject(device)) continue;
    if (typeof device.name === 'string' && /^[0-9]/.test(device.name)) need('0.5.0');
    if (device.annotations !== undefined) need('0.6.0');
    editsNeed(device.containerEdits);
  }
  return minimum;
}

/** Problems the schema lets through; [] for a spec every CDI loader accepts. */
export function cdiRuleProblems(spec: unknown): SpecProblem[] {
  const problems: SpecProblem[] = [];
  const add = (path: string, message: string) => problems.push({ path, message });
  if (!isObject(spec)) {
    add('', 'a CDI spec is an object');
    return problems;
  }
  unknownFields(spec, FIELDS.spec, '', add);
  checkVersion(spec, add);
  checkKind(spec.kind, add);
  checkAnnotations(spec.annotations, '/annotations', add);
  if (spec.containerEdits !== undefined) checkEdits(spec.containerEdits, '/containerEdits', false, add);

  const devices = listOf(spec.devices);
  if (devices.length === 0) add('/devices', 'a CDI spec needs at least one device');
  const seen = new Map<string, number>();
  devices.forEach((device, i) => {
    const at = `/devices/${i}`;
    if (!isObject(device)) return; // the schema reports it
    unknownFields(device, FIELDS.device, at, add);
    if (typeof device.name === 'string') {
      if (!isCdiName('device', device.name))
        add(
          `${at}/name`,
          `invalid device name ${JSON.stringify(device.name)}: letters or digits at both ends, only _ . : - inside`,
        );
      const first = seen.get(device.name);
      if (first !== undefined)
        add(`${at}/name`, `device name ${JSON.stringify(device.name)} is also used by /devices/${first}`);
      else seen.set(device.name, i);
    }
    checkAnnotations(device.annotations, `${at}/annotations`, add);
    checkEdits(device.containerEdits, `${at}/containerEdits`, true, add);
  });
  return problems;
}

function checkVersion(spec: Json, add: (path: string, message: string) => void): void {
  const version = spec.cdiVersion;
  if (typeof version !== 'string') return; // the schema reports it
  const plain = version.replace(/^v/, '');
  if (!(KNOWN_CDI_VERSIONS as readonly string[]).includes(plain)) {
    add('/cdiVersion', `unknown cdiVersion ${JSON.stringify(version)}: use one of ${KNOWN_CDI_VERSIONS.join(', ')}`);
    return;
  }
  const minimum = minimumCdiVersion(spec);
  if (compareVersions(plain, minimum) < 0) add('/cdiVersion', `the content needs cdiVersion ${minimum} or later`);
}

function checkKind(kind: unknown, add: (path: string, message: string) => void): void {
  if (typeof kind !== 'string') return; // the schema reports it
  try {
    parseCdiKind(kind);
  } catch (error) {
    const hint = (error as { hint?: string }).hint;
    add('/kind', `invalid kind ${JSON.stringify(kind)}${hint ? `: ${hint}` : ''}`);
  }
}

function checkAnnotations(annotations: unknown, at: string, add: (path: string, message: string) => void): void {
  if (!isObject(annotations)) return;
  let bytes = 0;
  for (const [key, value] of Object.entries(annotations)) {
    if (!isLabelKey(key)) add(`${at}/${escapePointer(key)}`, `invalid annotation key ${JSON.stringify(key)}`);
    bytes += key.length + (typeof value === 'string' ? value.length : 0);
  }
  if (bytes > MAX_ANNOTATIONS_BYTES) add(at, `annotations total ${bytes} bytes, more than 256 KiB`);
}

function checkEdits(edits: unknown, at: string, mustHaveContent: boolean, add: (p: string, m: string) => void): void {
  if (!isObject(edits)) return; // the schema reports it (required for devices)
  unknownFields(edits, FIELDS.edits, at, add);
  const empty =
    listOf(edits.env).length === 0 &&
    listOf(edits.deviceNodes).length === 0 &&
    listOf(edits.hooks).length === 0 &&
    listOf(edits.mounts).length === 0 &&
    edits.intelRdt === undefined &&
    listOf(edits.additionalGids).length === 0 &&
    listOf(edits.netDevices).length === 0;
  if (mustHaveContent && empty) add(at, 'a device needs non-empty containerEdits (the loader rejects empty edits)');

  listOf(edits.env).forEach((env, i) => {
    if (typeof env === 'string' && !(env.indexOf('=') > 0)) add(`${at}/env/${i}`, 'an env entry is KEY=VALUE');
  });
  listOf(edits.deviceNodes).forEach((node, i) => {
    const p = `${at}/deviceNodes/${i}`;
    if (!isObject(node)) return;
    unknownFields(node, FIELDS.deviceNode, p, add);
    if (!nonEmptyString(node.path)) add(`${p}/path`, 'a device node needs a non-empty path');
    if (node.type !== undefined && !DEVICE_NODE_TYPES.has(String(node.type)))
      add(`${p}/type`, 'a device node type is one of "", b, c, u, p');
    if (typeof node.permissions === 'string' && !/^[rwm]*$/.test(node.permissions))
      add(`${p}/permissions`, 'device node permissions hold only the letters r, w and m');
  });
  listOf(edits.mounts).forEach((mount, i) => {
    const p = `${at}/mounts/${i}`;
    if (!isObject(mount)) return;
    unknownFields(mount, FIELDS.mount, p, add);
    if (!nonEmptyString(mount.hostPath)) add(`${p}/hostPath`, 'a mount needs a non-empty hostPath');
    if (!nonEmptyString(mount.containerPath)) add(`${p}/containerPath`, 'a mount needs a non-empty containerPath');
  });
  listOf(edits.hooks).forEach((hook, i) => {
    const p = `${at}/hooks/${i}`;
    if (!isObject(hook)) return;
    unknownFields(hook, FIELDS.hook, p, add);
    if (!HOOK_NAMES.has(String(hook.hookName)))
      add(`${p}/hookName`, `unknown hook name ${JSON.stringify(hook.hookName)}: one of ${[...HOOK_NAMES].join(', ')}`);
    if (!nonEmptyString(hook.path)) add(`${p}/path`, 'a hook needs a non-empty path');
    listOf(hook.env).forEach((env, j) => {
      if (typeof env === 'string' && !(env.indexOf('=') > 0)) add(`${p}/env/${j}`, 'an env entry is KEY=VALUE');
    });
  });
  if (isObject(edits.intelRdt)) unknownFields(edits.intelRdt, FIELDS.intelRdt, `${at}/intelRdt`, add);
  listOf(edits.netDevices).forEach((net, i) => {
    const p = `${at}/netDevices/${i}`;
    if (!isObject(net)) return;
    unknownFields(net, FIELDS.netDevice, p, add);
    if (!nonEmptyString(net.hostInterfaceName)) add(`${p}/hostInterfaceName`, 'a net device needs a host interface');
    if (!nonEmptyString(net.name)) add(`${p}/name`, 'a net device needs a name');
  });
}

function unknownFields(
  value: Json,
  known: readonly string[],
  at: string,
  add: (path: string, message: string) => void,
): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) add(`${at}/${escapePointer(key)}`, `unknown field ${JSON.stringify(key)}`);
  }
}

function escapePointer(key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1');
}
