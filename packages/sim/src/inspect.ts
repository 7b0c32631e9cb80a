import { detectHostTee, detectVfioModel, discoverPci, type HostRoot, type PciDevice } from '@gpucc/hal';

/** What the hal discovers on a host tree: works on any directory laid out like a real host. */
export interface InspectReport {
  hostRoot: string;
  tee: string;
  vfio: ReturnType<typeof detectVfioModel>;
  devices: Array<Omit<PciDevice, 'sysfsPath'> & { sysfsPath: string }>;
  groups: Record<string, string[]>;
  problems: Array<Record<string, unknown>>;
  /** Attributes left unknown on devices that were kept (numa_node…). */
  warnings: Array<Record<string, unknown>>;
}

export function inspectHost(sysfs: HostRoot): InspectReport {
  const topology = discoverPci(sysfs);
  return {
    hostRoot: sysfs.root,
    tee: detectHostTee(sysfs),
    vfio: detectVfioModel(sysfs),
    devices: topology.devices,
    groups: Object.fromEntries([...topology.groups].map(([group, members]) => [String(group), members])),
    problems: topology.problems.map((p) => p.toJSON()),
    warnings: topology.warnings.map((w) => w.toJSON()),
  };
}

const hex = (v: number | undefined, w: number) => (v === undefined ? '-' : v.toString(16).padStart(w, '0'));

/** A readable table for a terminal. */
export function formatInspect(report: InspectReport): string {
  const head = ['ADDRESS', 'KIND', 'ID', 'CLASS', 'DRIVER', 'OVERRIDE', 'GROUP', 'NUMA', 'CDEV'];
  const rows = report.devices.map((d) => [
    d.address,
    d.kind,
    `${hex(d.vendor, 4)}:${hex(d.device, 4)}`,
    hex(d.class, 6),
    d.driver ?? '-',
    d.driverOverride ?? '-',
    d.iommuGroup === undefined ? '-' : String(d.iommuGroup),
    String(d.numaNode),
    d.vfioCdev ? d.vfioCdev.name : '-',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  const out = [
    `host root ${report.hostRoot}: TEE ${report.tee}, IOMMU ${report.vfio.iommuEnabled ? 'on' : 'off'}, VFIO model ${report.vfio.model}`,
    line(head),
    ...rows.map(line),
  ];
  for (const problem of report.problems) out.push(`problem: ${problem.code}: ${problem.message}`);
  for (const warning of report.warnings) out.push(`warning: ${warning.code}: ${warning.message}`);
  return `${out.join('\n')}\n`;
}
