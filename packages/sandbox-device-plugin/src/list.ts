import { table } from '@gpucc/daemon';
import type { GpuccError, HostRoot, PciIdsDb, VfioModel } from '@gpucc/hal';
import { loadPciIds, socketNameFor } from '@gpucc/hal';
import { nextDeviceState } from './device-state.js';
import { type PluginDevice, type SkippedDevice, scanInventory } from './inventory.js';
import { needsPciIds, type PluginSettings } from './settings.js';

/** What `list` shows: the resources and devices the plugin would advertise now, and what it would not. */
export interface ListReport {
  vfioModel: VfioModel;
  resources: Array<{ resourceName: string; socket: string; devices: PluginDevice[] }>;
  notAdvertised: SkippedDevice[];
  problems: ReturnType<GpuccError['toJSON']>[];
}

export function listReport(
  sysfs: HostRoot,
  settings: PluginSettings,
  pciIds: PciIdsDb | undefined = needsPciIds(settings) ? loadPciIds(sysfs, settings.pciIds) : undefined,
): ListReport {
  const inventory = scanInventory(sysfs, settings, pciIds);
  const state = nextDeviceState(new Map(), inventory);
  return {
    vfioModel: inventory.model,
    resources: [...state].map(([resourceName, devices]) => ({
      resourceName,
      socket: socketNameFor(resourceName),
      devices: [...devices.values()],
    })),
    notAdvertised: inventory.skipped,
    problems: inventory.problems.map((p) => p.toJSON()),
  };
}

/** The human table of `list`. */
export function formatList(report: ListReport): string {
  const lines: string[] = [];
  const rows: string[][] = [];
  for (const resource of report.resources) {
    for (const d of resource.devices) {
      rows.push([
        resource.resourceName,
        d.id,
        d.health,
        d.numaNodes.length ? d.numaNodes.join(',') : '-',
        d.members.length ? d.members.join(' ') : d.functions.map((f) => f.address).join(' '),
        d.deviceNodes.join(' '),
      ]);
    }
  }
  lines.push(`VFIO model: ${report.vfioModel}`);
  if (rows.length === 0) lines.push('no GPU or NVSwitch on a VFIO driver: nothing to advertise');
  else lines.push(table(['RESOURCE', 'ID', 'HEALTH', 'NUMA', 'FUNCTIONS', 'DEVICE NODES'], rows).trimEnd());
  for (const resource of report.resources) {
    for (const d of resource.devices) {
      if (d.reason) lines.push(`  ${resource.resourceName} ${d.id}: ${d.reason}`);
    }
  }
  if (report.notAdvertised.length) {
    lines.push('', 'not advertised:');
    for (const s of report.notAdvertised) lines.push(`  ${s.address} ${s.pciId} ${s.type}: ${s.reason}`);
  }
  for (const p of report.problems) lines.push(`problem: ${String(p.message)}`);
  return `${lines.join('\n')}\n`;
}
