import type { GpuToolsOptions } from './gpu-tools-args.js';
import { deviceString, listingLines } from './gpu-tools-format.js';
import type { ToolDevice } from './tool-device.js';

/**
 * Which devices one gpu-admin-tools call works on, in the real tool's order of selectors: `--gpu-bdf`
 * (a BDF substring, exactly one GPU or NVSwitch), `--gpu-name`, `--devices`, else the listing and
 * `--gpu <index>`. Pure: the node's NVIDIA functions (sorted by BDF) in, the decision out.
 */

export type SelectionOutcome =
  | { kind: 'selected'; devices: ToolDevice[] }
  /** Logged at ERROR, exit 1. */
  | { kind: 'error'; message: string }
  /** Logged at INFO, exit 0. */
  | { kind: 'nothing'; message: string }
  /** An uncaught Python exception (last traceback line), exit 1. */
  | { kind: 'exception'; exception: string };

export interface Selection {
  /** Devices the tool opened while selecting (their power state is forced, with a warning). */
  initialised: ToolDevice[];
  /** stdout lines printed while selecting (the `GPUs:`/`Other:` listing). */
  listing: string[];
  outcome: SelectionOutcome;
}

/** GPUs and NVSwitches: the devices `--gpu`, `--gpu-bdf` and `--gpu-name` choose from. */
export function selectable(all: readonly ToolDevice[]): ToolDevice[] {
  return all.filter((d) => d.kind !== 'other');
}

export function selectDevices(all: readonly ToolDevice[], options: GpuToolsOptions): Selection {
  const gpus = selectable(all);
  if (options.gpuBdf !== undefined) {
    const bdf = options.gpuBdf;
    const found = gpus.filter((d) => d.address.includes(bdf));
    if (found.length === 0)
      return { initialised: [], listing: [], outcome: { kind: 'error', message: `Matching for ${bdf} found nothing` } };
    if (found.length > 1) {
      const names = found.map((d) => deviceString(d)).join(', ');
      return {
        initialised: found,
        listing: [],
        outcome: { kind: 'error', message: `Matching for ${bdf} found more than one GPU ${names}` },
      };
    }
    return { initialised: found, listing: [], outcome: { kind: 'selected', devices: found } };
  }
  if (options.gpuName !== undefined) {
    const name = options.gpuName;
    const first = gpus.find((d) => d.name.includes(name));
    if (!first)
      return {
        initialised: gpus,
        listing: [],
        outcome: { kind: 'error', message: `Matching for ${name} found nothing` },
      };
    return { initialised: gpus, listing: [], outcome: { kind: 'selected', devices: [first] } };
  }
  if (options.devices !== undefined) {
    const found = devicesFromSpec(all, options.devices);
    if (found.length === 0) {
      return {
        initialised: [],
        listing: [],
        outcome: { kind: 'error', message: `No devices found matching: ${options.devices}` },
      };
    }
    return { initialised: found, listing: [], outcome: { kind: 'selected', devices: found } };
  }
  const other = all.filter((d) => d.kind === 'other');
  const listing = listingLines(gpus, other);
  const index = options.gpu ?? -1;
  if (index === -1) {
    return {
      initialised: gpus,
      listing,
      outcome: { kind: 'nothing', message: 'No GPU specified, select GPU with --gpu, --gpu-bdf, or --gpu-name' },
    };
  }
  if (index >= gpus.length)
    return {
      initialised: gpus,
      listing,
      outcome: { kind: 'exception', exception: 'ValueError: GPU index out of bounds' },
    };
  // Python list indexing: negative indexes count from the end.
  const chosen = gpus[index < 0 ? gpus.length + index : index];
  if (!chosen)
    return {
      initialised: gpus,
      listing,
      outcome: { kind: 'exception', exception: 'IndexError: list index out of range' },
    };
  return { initialised: gpus, listing, outcome: { kind: 'selected', devices: [chosen] } };
}

const INDEXED = /^(gpus|nvswitches)(?:\[(-?\d*)(?::(-?\d*))?\])?$/;
const VENDOR_DEVICE = /^([0-9a-f]{4}):([0-9a-f]{4})$/i;
const BDF = /^(?:([0-9a-f]{4}):)?([0-9a-f]{2}:[0-9a-f]{2}\.[0-7])$/i;

/**
 * `--devices`: comma-separated `gpus`, `gpus[n]`, `gpus[n:m]` (Python slice), `nvswitches[...]`,
 * `vendor:device`, a BDF, and `all` (GPUs and NVSwitches; a fake-only convenience). NVIDIA only.
 */
export function devicesFromSpec(all: readonly ToolDevice[], spec: string): ToolDevice[] {
  const chosen: ToolDevice[] = [];
  const add = (list: readonly ToolDevice[]) => {
    for (const d of list) if (!chosen.includes(d)) chosen.push(d);
  };
  for (const part of spec.split(',').map((p) => p.trim())) {
    if (part === 'all') {
      add(selectable(all));
      continue;
    }
    const indexed = INDEXED.exec(part);
    if (indexed) {
      const list = all.filter((d) => d.kind === (indexed[1] === 'gpus' ? 'gpu' : 'nvswitch'));
      add(part.includes('[') ? pick(list, indexed[2], indexed[3]) : list);
      continue;
    }
    const ids = VENDOR_DEVICE.exec(part);
    if (ids) {
      const vendor = Number.parseInt(ids[1]!, 16);
      const device = Number.parseInt(ids[2]!, 16);
      add(all.filter((d) => d.vendor === vendor && d.device === device));
      continue;
    }
    const bdf = BDF.exec(part);
    if (bdf) {
      const address = `${(bdf[1] ?? '0000').toLowerCase()}:${bdf[2]!.toLowerCase()}`;
      add(all.filter((d) => d.address === address));
    }
  }
  return chosen;
}

/** `[n]` (one device) or `[n:m]` (a Python slice; `to` is undefined without a colon). */
function pick(list: readonly ToolDevice[], from: string | undefined, to: string | undefined): ToolDevice[] {
  const norm = (text: string | undefined, fallback: number) => {
    if (text === undefined || text === '') return fallback;
    const n = Number(text);
    return n < 0 ? Math.max(0, list.length + n) : n;
  };
  if (to !== undefined) return list.slice(norm(from, 0), norm(to, list.length));
  const one = list[norm(from, 0)];
  return one ? [one] : [];
}
