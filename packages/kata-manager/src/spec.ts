/**
 * CDI specs from published devices, and their bytes. Pure and deterministic: the same devices give
 * the same bytes, so an unchanged node never causes a write (and no refresh in containerd/CRI-O).
 */

import { compareDeviceIds, parseCdiKind } from '@gpucc/hal';
import type { PublishedDevice } from './devices.js';
import type { SpecFormat } from './validate.js';

/**
 * The lowest version our content needs (names start with a digit) and the one Kata's, podman 4's
 * and Debian's CDI libraries accept: a 0.6.0 spec is silently ignored by podman 4.3 (docs/facts/cdi.md#versions).
 */
export const CDI_VERSION = '0.5.0';

/**
 * First line of every file kata-manager writes: how it recognises its own files, the only ones it
 * replaces or removes. CDI loaders ignore comments.
 */
export const OWNER_HEADER =
  '# Written by gpucc kata-manager, which rewrites or removes this file as VFIO devices change: do not edit.';

export interface CdiDeviceNode {
  path: string;
}

export interface CdiDevice {
  name: string;
  containerEdits: { deviceNodes: CdiDeviceNode[] };
}

/** The subset of a CDI spec kata-manager emits: no annotations (0.6.0), no top-level edits. */
export interface CdiSpec {
  cdiVersion: string;
  kind: string;
  devices: CdiDevice[];
}

/** One spec and where it goes. */
export interface SpecForKind {
  kind: string;
  /** `<vendor>-<class>_gpucc.yaml`, e.g. `nvidia.com-pgpu_gpucc.yaml`. */
  fileName: string;
  spec: CdiSpec;
  devices: PublishedDevice[];
}

/**
 * `nvidia.com/pgpu` → `nvidia.com-pgpu_gpucc.yaml`: CDI's name for one of several writers of a kind
 * (`<vendor>-<class>_<id>`, the Go helper's GenerateTransientSpecName; docs/facts/cdi.md#names), so no
 * other writer's `nvidia.com-pgpu.yaml` (GenerateSpecName) is ever ours to replace. The kind, which
 * the naming contract fixes, is unchanged.
 */
export function specFileName(kind: string): string {
  const { vendor, class: cdiClass } = parseCdiKind(kind);
  return `${vendor}-${cdiClass}_${SPEC_FILE_ID}.yaml`;
}

/** The writer id in our spec file names. */
export const SPEC_FILE_ID = 'gpucc';

/** One spec per kind, kinds in name order, devices in numeric ID order ("8" before "10"). */
export function buildSpecs(devices: readonly PublishedDevice[]): SpecForKind[] {
  const byKind = new Map<string, PublishedDevice[]>();
  for (const device of devices) byKind.set(device.kind, [...(byKind.get(device.kind) ?? []), device]);
  return [...byKind.keys()].sort().map((kind) => {
    const members = byKind.get(kind)!.sort((a, b) => compareDeviceIds(a.name, b.name));
    return {
      kind,
      fileName: specFileName(kind),
      devices: members,
      spec: {
        cdiVersion: CDI_VERSION,
        kind,
        devices: members.map((d) => ({
          name: d.name,
          containerEdits: { deviceNodes: d.nodes.map((path) => ({ path })) },
        })),
      },
    };
  });
}

/**
 * The bytes of a spec. YAML: the ownership header, then the spec in block style with `cdiVersion`
 * and device names double-quoted (a bare `60` would be read back as a number, which the loader
 * rejects). Written by hand for a fixed shape (ten times faster than a general emitter on 256
 * devices); every text is parsed back by a full YAML parser before it is written or printed, so a
 * mistake here is refused, never published. JSON: the spec alone (JSON has no comments).
 */
export function renderSpec(spec: CdiSpec, format: SpecFormat): string {
  if (format === 'json') return `${JSON.stringify(spec, null, 2)}\n`;
  const lines = [OWNER_HEADER, `cdiVersion: ${quoted(spec.cdiVersion)}`, `kind: ${scalar(spec.kind)}`, 'devices:'];
  for (const device of spec.devices) {
    lines.push(`  - name: ${quoted(device.name)}`, '    containerEdits:', '      deviceNodes:');
    for (const node of device.containerEdits.deviceNodes) lines.push(`        - path: ${scalar(node.path)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** A JSON string is a valid YAML double-quoted scalar with the same value. */
const quoted = (value: string) => JSON.stringify(value);

// Plain only when no YAML 1.1 or 1.2 reader can take it for anything but this string: it holds a
// `/` (so it is no number, boolean or null) and only characters with no meaning in YAML.
const SAFE_PLAIN = /^(?=[^/]*\/)[A-Za-z0-9/][A-Za-z0-9_./-]*$/;
const scalar = (value: string) => (SAFE_PLAIN.test(value) ? value : quoted(value));

/** Whether a spec file's text was written by kata-manager. */
export function isOwnSpecText(text: string | undefined): boolean {
  return text?.startsWith(`${OWNER_HEADER}\n`) === true;
}
