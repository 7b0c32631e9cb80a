import {
  type GpuccError,
  type HostRoot,
  isGpuccError,
  type NameAliases,
  type PciIdsSource,
  type VfioDeviceModelSetting,
} from '@gpucc/hal';
import { applySpecPlan, type SpecResult } from './apply.js';
import { type DeviceSelection, type SkippedDevice, selectDevices } from './devices.js';
import type { DeviceObserver } from './observe.js';
import { type DeviceObservation, observeCdiDir, observeDevices } from './observe.js';
import { conflictError, type DesiredSpec, planSpecs, type SpecConflict, type SpecPlan } from './plan.js';
import { buildSpecs, renderSpec, type SpecForKind } from './spec.js';
import { checkSpecText, type SpecFormat } from './validate.js';

/** Where specs go unless told otherwise: the dynamic CDI directory, which has priority over /etc/cdi. */
export const DEFAULT_CDI_DIR = '/var/run/cdi';

export interface GenerateOptions {
  aliases: NameAliases;
  /** `--vfio-device-model`: group or cdev per device (default auto). */
  deviceModel?: VfioDeviceModelSetting;
  /** Where per-model names come from when the host root has no pci.ids (`--pci-ids`). */
  pciIds?: PciIdsSource;
  /** `run`: observes through the event path where the change events allow it (else a full pass). */
  observer?: DeviceObserver;
}

export interface RenderedSpec extends SpecForKind {
  /** The validated text in the asked format; undefined when validation refused it. */
  text?: string;
  error?: GpuccError;
}

export interface Generated {
  observation: DeviceObservation;
  selection: DeviceSelection;
  specs: RenderedSpec[];
}

/** observe → select → build → render → validate: the specs the host needs now. Reads only. */
export function generate(sysfs: HostRoot, options: GenerateOptions, format: SpecFormat = 'yaml'): Generated {
  const perModelNames = options.aliases.gpuAlias === '' || options.aliases.nvswitchAlias === '';
  const observeOptions = { perModelNames, ...(options.pciIds ? { pciIds: options.pciIds } : {}) };
  const observation = options.observer
    ? options.observer.observe(sysfs, observeOptions)
    : observeDevices(sysfs, observeOptions);
  const selection = selectDevices(observation, options.aliases, options.deviceModel);
  const specs = buildSpecs(selection.devices).map((spec): RenderedSpec => {
    const text = renderSpec(spec.spec, format);
    try {
      checkSpecText(text, format, spec.fileName);
      return { ...spec, text };
    } catch (error) {
      if (!isGpuccError(error)) throw error;
      return { ...spec, error };
    }
  });
  return { observation, selection, specs };
}

export interface WriteOptions extends GenerateOptions {
  /** Host path of the CDI directory (`/var/run/cdi`, `/etc/cdi`), joined under the host root. */
  cdiDir: string;
  dryRun: boolean;
}

export interface WriteReport {
  /** Every spec is as it should be: nothing refused or failed, no conflict. */
  ok: boolean;
  results: SpecResult[];
  conflicts: SpecConflict[];
  skipped: SkippedDevice[];
  /** The errors behind `ok: false`, one per problem, for logs and exit messages. */
  errors: GpuccError[];
}

export interface WriteResult {
  generated: Generated;
  plan: SpecPlan;
  /** Absent on a dry run. */
  report?: WriteReport;
}

export interface PlannedWrite {
  generated: Generated;
  plan: SpecPlan;
}

/** observe → plan for the CDI directory. Reads only. */
export function planWrite(sysfs: HostRoot, options: Omit<WriteOptions, 'dryRun'>): PlannedWrite {
  const generated = generate(sysfs, options, 'yaml');
  const dir = hostDir(options.cdiDir);
  const desired: DesiredSpec[] = generated.specs.map((s) => ({
    fileName: s.fileName,
    kind: s.kind,
    deviceNames: s.spec.devices.map((d) => d.name),
    ...(s.text === undefined ? {} : { content: s.text }),
    ...(s.error === undefined ? {} : { error: s.error }),
  }));
  return { generated, plan: planSpecs(dir, desired, observeCdiDir(sysfs, dir)) };
}

/** apply for a planned write: the files written, removed, refused, with every problem. */
export async function applyWrite(sysfs: HostRoot, planned: PlannedWrite): Promise<WriteResult> {
  const results = await applySpecPlan(sysfs, planned.plan);
  return { ...planned, report: reportOf(planned.plan, results, planned.generated.selection.skipped) };
}

/** observe → plan → apply for the CDI directory: `write`, and each reconcile of `run`. */
export async function write(sysfs: HostRoot, options: WriteOptions): Promise<WriteResult> {
  const planned = planWrite(sysfs, options);
  return options.dryRun ? planned : applyWrite(sysfs, planned);
}

function reportOf(plan: SpecPlan, results: SpecResult[], skipped: SkippedDevice[]): WriteReport {
  const errors = [
    ...results.flatMap((r) => (r.error ? [r.error] : [])),
    ...unrefusedConflicts(plan),
    ...skipped.flatMap((s) => (s.error ? [s.error] : [])),
  ];
  return { ok: errors.length === 0, results, conflicts: plan.conflicts, skipped, errors };
}

/** Every problem of a write (or of its plan, on a dry run): refusals, failures, conflicts, unnamed devices. */
export function resultErrors(result: WriteResult): GpuccError[] {
  if (result.report) return result.report.errors;
  const { plan, generated } = result;
  return [
    ...plan.actions.flatMap((a) => (a.action === 'refuse' ? [a.error] : [])),
    ...unrefusedConflicts(plan),
    ...generated.selection.skipped.flatMap((s) => (s.error ? [s.error] : [])),
  ];
}

/** Conflicts not already reported by their spec's refusal (one refused for another reason first). */
function unrefusedConflicts(plan: SpecPlan): GpuccError[] {
  const reported = new Set(
    plan.actions.flatMap((a) =>
      a.action === 'refuse' && a.error.code === 'ERR_GPUCC_CDI_DEVICE_CONFLICT' ? [a.fileName] : [],
    ),
  );
  return plan.conflicts.filter((c) => !reported.has(c.ours)).map((c) => conflictError(plan.dir, c));
}

/** Exit code of a one-shot command: 0 every spec true, 1 something refused, failed or conflicting. */
export function exitCodeOf(result: WriteResult): 0 | 1 {
  return resultErrors(result).length === 0 ? 0 : 1;
}

/** `/var/run/cdi` → `var/run/cdi` (a host path under the root). */
export function hostDir(dir: string): string {
  return dir.replace(/^\/+/, '').replace(/\/+$/, '');
}
