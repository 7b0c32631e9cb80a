import { type DirWatches, watchDirs } from '@gpucc/daemon';
import type { ReconcileOutcome } from '@gpucc/daemon/runtime';
import { type HostRoot, PCI_DEVICES_DIR, VFIO_DEVICES_DIR, VFIO_DIR } from '@gpucc/hal';
import type { ApplyOptions } from './apply.js';
import { bind, release } from './commands.js';
import { observe } from './observe.js';
import { planBind, planRelease } from './plan.js';
import { statusReport } from './status.js';

/** What GPU Operator's sandbox validator writes; the device plugin's init container waits for it. */
export const READY_MARKER = 'run/nvidia/validations/vfio-pci-ready';

export interface DesiredState {
  desired: 'vfio' | 'none';
  nvswitches: boolean;
  allowForeignGroupMembers: boolean;
}

/**
 * One level-triggered reconcile of the daemon: every GPU toward the desired state. The readiness
 * marker exists exactly while the node is converged to `vfio`.
 */
export async function reconcileOnce(
  sysfs: HostRoot,
  desired: DesiredState,
  options: ApplyOptions,
): Promise<ReconcileOutcome> {
  const result =
    desired.desired === 'vfio'
      ? await bind(sysfs, { selection: { all: true }, ...desired, dryRun: false }, options)
      : await release(
          sysfs,
          { selection: { all: true }, nvswitches: desired.nvswitches, restore: true, dryRun: false },
          options,
        );
  const after = observe(sysfs);
  const plan =
    desired.desired === 'vfio'
      ? planBind(after, { all: true }, desired)
      : planRelease(after, { all: true }, { nvswitches: desired.nvswitches, restore: true });
  const report = statusReport(sysfs, after, plan);
  const converged = report.converged && result.report?.ok === true;
  if (converged && desired.desired === 'vfio') await sysfs.writeFileAtomic(READY_MARKER, '', 0o644);
  else await sysfs.removeFile(READY_MARKER);
  const failed =
    result.report?.results.filter(
      (r) => r.outcome !== 'unchanged' && r.outcome !== 'bound' && r.outcome !== 'restored' && r.outcome !== 'released',
    ) ?? [];
  return {
    ok: converged,
    ...(converged
      ? {}
      : {
          reason: failed.length
            ? `${failed.length} device(s) not converged: ${failed.map((f) => `${f.address} ${f.outcome}`).join(', ')}`
            : 'not converged',
        }),
    details: { devices: report.devices.length, failed: failed.length },
  };
}

/** Where change events come from: the VFIO device nodes (both models), and the PCI bus on a simulated node. */
export const WATCHED_DIRS = [VFIO_DIR, VFIO_DEVICES_DIR, PCI_DEVICES_DIR] as const;

/**
 * Change events: device nodes appearing or vanishing under /dev/vfio and /dev/vfio/devices
 * (devtmpfs reports them), and (on simulated nodes, where sysfs is a plain tree) bus changes. Real
 * sysfs sends no inotify events, so the resync covers the rest. A directory missing now is not
 * watched until `refresh` (after every reconcile) finds it; a directory watched for the first time
 * triggers one more look, for what changed in it before its watch existed.
 */
export function watchForChanges(sysfs: HostRoot, trigger: (reason: string) => void): DirWatches {
  const watches = watchDirs(
    sysfs,
    () => WATCHED_DIRS,
    (dir, name) => trigger(`${dir}/${name ?? ''} changed`),
  );
  return {
    refresh() {
      const fresh = watches.refresh();
      if (fresh.length > 0) trigger(`now watching ${fresh.join(', ')}`);
      return fresh;
    },
    close: () => watches.close(),
  };
}
