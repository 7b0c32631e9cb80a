import path from 'node:path';
import { type CcMode, GpuccError, type HostRoot, lockdownBlockingBars, readHostFacts } from '@gpucc/hal';
import type { CapabilityTable } from '../capability.js';
import { runChecks } from './checks.js';
import { type DoctorTools, probeFirmware } from './firmware.js';
import { checkNfdTarget, nfdFeatures, renderNfdFile } from './nfd.js';
import { observeDoctor } from './observe.js';
import { type DoctorReport, makeReport } from './report.js';

export { type CheckResult, type CheckStatus, runChecks } from './checks.js';
export {
  type DoctorTools,
  type FirmwareAnswer,
  type FirmwareObservation,
  firmwareDevices,
  probeFirmware,
} from './firmware.js';
export {
  checkNfdTarget,
  DOCTOR_PASSED_LABEL,
  GPUCC_LABEL_PREFIX,
  NFD_FILE_HEADER,
  type NfdFeatures,
  nfdFeatures,
  renderNfdFile,
} from './nfd.js';
export { type DoctorObservation, observeDoctor } from './observe.js';
export { type DoctorReport, exitCodeOf, formatDoctor, type ReportedHost } from './report.js';

export interface DoctorOptions {
  mode: CcMode;
  capability: CapabilityTable;
  /** gpu-admin-tools, for the firmware check (`cc-firmware`); without it that check is left out. */
  tools?: DoctorTools;
  /** `--pci-ids`: the pci.ids fallback the operands are given (a file of this machine or container). */
  pciIdsFallback?: string;
  /** Absolute host path of an NFD local feature file to write (e.g. /etc/kubernetes/node-feature-discovery/features.d/gpucc). */
  nfdFeaturesFile?: string;
  /** Write the NFD file even outside features.d/ or over a file the doctor did not write. */
  force?: boolean;
}

/**
 * observe (sysfs, then the firmware through gpu-admin-tools' queries) → checks → report; writes the
 * NFD feature file (atomically) when asked. Reads only, otherwise: no knob, no reset, no sysfs write.
 */
export async function doctor(sysfs: HostRoot, options: DoctorOptions): Promise<DoctorReport> {
  const file = options.nfdFeaturesFile === undefined ? undefined : hostPath(options.nfdFeaturesFile);
  if (file !== undefined) checkNfdTarget(sysfs, file, options.force === true); // refused before any tool runs
  const host = await readHostFacts(sysfs);
  const observation = observeDoctor(sysfs, options.capability, {
    host,
    ...(options.pciIdsFallback === undefined ? {} : { pciIdsFallback: options.pciIdsFallback }),
  });
  if (options.tools) {
    const lockdown = lockdownBlockingBars(observation.lockdown);
    observation.firmware = await probeFirmware(observation.devices, options.mode, options.tools, lockdown);
  }
  const checks = runChecks(observation, options.mode);
  const features = nfdFeatures(
    observation,
    checks.every((c) => c.status !== 'fail'),
  );
  const report = makeReport(options.mode, observation, checks, features);
  if (file === undefined) return report;
  await sysfs.writeFileAtomic(file, renderNfdFile(features));
  return { ...report, nfdFile: file };
}

/** `/etc/…/gpucc` → `etc/…/gpucc` under the host root; a relative path has no clear meaning on the host. */
export function hostPath(file: string): string {
  if (!path.posix.isAbsolute(file) || file.endsWith('/')) {
    throw new GpuccError(
      'ERR_GPUCC_USAGE',
      `--nfd-features-file ${JSON.stringify(file)} is not an absolute file path`,
      {
        hint: 'give the host path of the file, e.g. /etc/kubernetes/node-feature-discovery/features.d/gpucc',
      },
    );
  }
  return path.posix.normalize(file).replace(/^\/+/, '');
}
