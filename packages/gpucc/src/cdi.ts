import { type HostRoot, messageOf } from '@gpucc/hal';
import { parse } from 'yaml';

/** A device of a CDI spec on disk: its fully qualified name and the host paths of its device nodes. */
export interface CdiDevice {
  /** `<kind>=<name>`, e.g. `nvidia.com/pgpu=12`. */
  name: string;
  /** The spec file, as a host path. */
  file: string;
  /** Absolute host paths (`hostPath`, else `path`: docs/facts/cdi.md#spec-structure). */
  deviceNodes: string[];
}

export interface CdiSpecs {
  devices: CdiDevice[];
  unreadable: string[];
}

/**
 * Every device of every spec (`*.yaml`, `*.json` only: docs/facts/cdi.md#spec-directories) in the CDI
 * directories, read-only. A spec that cannot be parsed is named in `unreadable`, the others still count; a missing directory is normal.
 */
export function readCdiSpecs(sysfs: HostRoot, dirs: readonly string[]): CdiSpecs {
  const devices: CdiDevice[] = [];
  const unreadable: string[] = [];
  for (const dir of dirs) {
    const rel = dir.replace(/^\/+/, '');
    let names: string[];
    try {
      names = sysfs.readdir(rel).filter((n) => /\.(yaml|json)$/.test(n) && !n.startsWith('.'));
    } catch (error) {
      unreadable.push(`CDI dir ${dir}: ${messageOf(error)}`);
      continue;
    }
    for (const name of names) {
      const file = `${dir.replace(/\/+$/, '')}/${name}`;
      try {
        devices.push(...specDevices(parse(sysfs.read(`${rel}/${name}`)) as unknown, file));
      } catch (error) {
        unreadable.push(`CDI spec ${file}: ${messageOf(error)}`);
      }
    }
  }
  return { devices, unreadable };
}

interface SpecShape {
  kind?: unknown;
  devices?: Array<{ name?: unknown; containerEdits?: { deviceNodes?: Array<{ path?: unknown; hostPath?: unknown }> } }>;
}

function specDevices(spec: unknown, file: string): CdiDevice[] {
  const { kind, devices } = (spec ?? {}) as SpecShape;
  if (typeof kind !== 'string' || !Array.isArray(devices)) throw new Error('not a CDI spec (no kind or devices)');
  return devices.flatMap((d) => {
    if (typeof d?.name !== 'string') return [];
    const nodes = (d.containerEdits?.deviceNodes ?? []).flatMap((n) => {
      const p = typeof n.hostPath === 'string' ? n.hostPath : n.path;
      return typeof p === 'string' ? [p] : [];
    });
    return [{ name: `${kind}=${d.name}`, file, deviceNodes: nodes }];
  });
}
