import type { Logger, ProgressSink } from '@gpucc/daemon';
import {
  bindDevice,
  clearDriverOverride,
  currentDriver,
  currentOverride,
  GpuccError,
  type HostRoot,
  isGpuccError,
  isVfioDriver,
  type ModprobeOptions,
  modprobe,
  noiommuCdevPath,
  noiommuGroupPath,
  type PciAddress,
  probeDevice,
  registeredDriverName,
  setDriverOverride,
  takeNvidiaUnbindLock,
  unbindDevice,
  type VfioModel,
  vfioCdevPath,
  vfioGroupPath,
  waitForPath,
} from '@gpucc/hal';
import { type Observation, unbindLockPath } from './observe.js';
import type { DeviceStep, GroupPlan, Plan } from './plan.js';
import { type DeviceRecord, type VfioState, writeState } from './state.js';

const WRITE_TIMEOUT = 'ERR_GPUCC_SYSFS_WRITE_TIMEOUT';

export type Outcome = 'unchanged' | 'bound' | 'released' | 'restored' | 'failed' | 'rolled-back' | 'refused';

export interface DeviceResult {
  address: PciAddress;
  group?: number;
  outcome: Outcome;
  driver?: string;
  error?: Record<string, unknown>;
}

export interface ApplyReport {
  ok: boolean;
  results: DeviceResult[];
}

export interface ApplyOptions {
  logger: Logger;
  loadModules: boolean;
  modprobe: ModprobeOptions;
  unbindTimeoutMs: number;
  deviceNodeTimeoutMs: number;
  /** How long to wait for another vfio-manager's host lock (--lock-timeout); default 30 s. */
  lockTimeoutMs?: number;
  /** Abort between groups (SIGTERM): a group in flight always finishes or rolls back. */
  signal?: AbortSignal;
  /**
   * One progress line per group that this run changes or cannot change (given the number of them,
   * once planned): a terminal's `terminalProgress`; absent, nothing is shown.
   */
  progress?: (groups: number) => ProgressSink | undefined;
}

/**
 * Carries out a bind plan group by group: intent recorded before the first write, override → unbind
 * → bind per function, the whole group rolled back when one function fails, device nodes awaited.
 */
export async function applyBind(
  sysfs: HostRoot,
  plan: Plan,
  observation: Observation,
  options: ApplyOptions,
): Promise<ApplyReport> {
  const onDisk: VfioState = structuredClone(observation.state); // writeState keeps it equal to the file
  const state: VfioState = structuredClone(observation.state);
  const results: DeviceResult[] = [];
  // GPUs whose NVIDIA unbind lock this run took: given back unless they leave nvidia (below).
  const locked = new Set<PciAddress>();
  try {
    await releaseStaleUnbindLocks(sysfs, state, options.logger);
    await bindGroups(sysfs, plan, observation, options, { state, onDisk }, results, locked);
  } finally {
    await releaseUnbindLocks(sysfs, locked, options.logger); // what an error left behind
    settleUnbindLocks(sysfs, state);
    if (JSON.stringify(state) !== JSON.stringify(onDisk)) await writeState(sysfs, state, onDisk);
  }
  results.push(...unreadableOwnDevices(observation));
  return { ok: results.every((r) => r.outcome === 'unchanged' || r.outcome === 'bound'), results };
}

async function bindGroups(
  sysfs: HostRoot,
  plan: Plan,
  observation: Observation,
  options: ApplyOptions,
  { state, onDisk }: { state: VfioState; onDisk: VfioState },
  results: DeviceResult[],
  locked: Set<PciAddress>,
): Promise<void> {
  // The NVIDIA unbind locks about to be taken, on disk before the first one: a run killed while
  // holding them leaves a record, and the next run gives them back.
  const lockIntent = plan.groups
    .filter((g) => !g.refused)
    .flatMap((g) => g.steps.filter((s) => s.writes.length > 0 && observation.unbindLocks.has(s.address)))
    .map((s) => s.address);
  if (lockIntent.length > 0 && !options.signal?.aborted) {
    state.unbindLocks = [...new Set([...(state.unbindLocks ?? []), ...lockIntent])].sort();
    await writeState(sysfs, state, onDisk);
  }

  const progress = groupProgress(plan, options);

  // Pass 1, no sysfs write: refusals and preflight per group.
  const ready: GroupPlan[] = [];
  for (const group of plan.groups) {
    if (options.signal?.aborted && !group.refused) {
      const stopped = interrupted(group); // stopped already: take no more locks
      progress(group, stopped);
      results.push(...stopped);
      continue;
    }
    const early = await checkGroup(sysfs, group, observation, options, locked);
    if (early) {
      progress(group, early);
      results.push(...early);
    } else ready.push(group);
  }

  // Intent for every group at once, before the first write: a crash between any two writes below
  // still knows each device's previous driver. (One state write, not one per group.)
  const moving = ready.flatMap((group) => group.steps.filter((s) => s.writes.length > 0).map((s) => ({ s, group })));
  if (moving.length > 0) {
    for (const { s, group } of moving) {
      state.devices[s.address] ??= record(s, group);
      state.devices[s.address]!.phase = 'binding';
    }
    await writeState(sysfs, state, onDisk);
  }

  // Pass 2: the writes, group by group; a shutdown stops between groups, never inside one.
  for (const group of ready) {
    const started = performance.now();
    const done = options.signal?.aborted
      ? interrupted(group)
      : await bindGroup(sysfs, group, state, observation, options);
    progress(group, done, performance.now() - started);
    results.push(...done);
    // A GPU still on nvidia (refused by the kernel, rolled back, not started) must not keep the lock.
    await releaseUnbindLocks(sysfs, locked, options.logger.child({ group: group.group }), group);
  }
  // the results are written by applyBind, after the last lock is given back
}

/** A refused group, or one whose drivers or preflight fail, ends here with its results; else undefined. */
async function checkGroup(
  sysfs: HostRoot,
  group: GroupPlan,
  observation: Observation,
  options: ApplyOptions,
  locked: Set<PciAddress>,
): Promise<DeviceResult[] | undefined> {
  const log = options.logger.child({ group: group.group });
  if (group.refused) {
    log.error({ event: 'bind.refused', err: group.refused.toJSON() }, group.refused.message);
    return group.steps.map((s) => ({ ...base(s, group), outcome: 'refused', error: group.refused!.toJSON() }));
  }
  const moving = group.steps.filter((s) => s.writes.length > 0);
  try {
    await ensureDrivers(sysfs, moving, options);
    await preflight(sysfs, moving, observation, locked);
    return undefined;
  } catch (error) {
    const err = asGpuccError(error);
    log.error({ event: 'bind.preflight_failed', err: err.toJSON() }, err.message);
    await releaseUnbindLocks(sysfs, locked, log, group);
    return group.steps.map((s) => failed(s, group, err));
  }
}

async function bindGroup(
  sysfs: HostRoot,
  group: GroupPlan,
  state: VfioState,
  observation: Observation,
  options: ApplyOptions,
): Promise<DeviceResult[]> {
  const log = options.logger.child({ group: group.group });
  const moving = group.steps.filter((s) => s.writes.length > 0);
  const changed: DeviceStep[] = [];
  for (const s of moving) {
    const driver = registeredDriverName(sysfs, s.targetDriver!) ?? s.targetDriver!;
    try {
      changed.push(s);
      log.info(
        { event: 'bind.device', device: s.address, from: s.currentDriver ?? null, to: driver },
        `binding ${s.address} to ${driver}`,
      );
      if (currentOverride(sysfs, s.address) !== driver) await setDriverOverride(sysfs, s.address, driver);
      await unbindDevice(sysfs, s.address, { timeoutMs: options.unbindTimeoutMs });
      await bindDevice(sysfs, s.address, driver);
    } catch (error) {
      const err = asGpuccError(error);
      log.error(
        { event: 'bind.failed', device: s.address, err: err.toJSON() },
        `${err.message}; rolling back group ${group.group}`,
      );
      // A write that timed out may still complete in the kernel: its device's record stays until a
      // later run sees the outcome (restore then finds it unbound and puts it back).
      const unknown = timedOut(err) ? new Set([s.address]) : new Set<PciAddress>();
      const rollback = await rollbackGroup(sysfs, changed, state, log, unknown);
      return group.steps.map((other) =>
        other === s
          ? { ...failed(other, group, err), error: { ...err.toJSON(), rollback } }
          : changed.includes(other)
            ? { ...base(other, group), outcome: 'rolled-back', error: err.toJSON() }
            : failed(other, group, err),
      );
    }
  }
  // Every function now on its target reads as bound, also one that a killed run had already moved.
  for (const s of group.steps) {
    const rec = state.devices[s.address];
    if (rec && (s.writes.length > 0 || (s.targetDriver !== undefined && s.currentDriver === s.targetDriver)))
      rec.phase = 'bound';
  }

  try {
    await waitForNodes(sysfs, group, observation.model.model, options.deviceNodeTimeoutMs);
  } catch (error) {
    const err = asGpuccError(error);
    log.error({ event: 'bind.device_node_missing', err: err.toJSON() }, err.message);
    return group.steps.map((s) => failed(s, group, err));
  }
  return group.steps.map((s) => ({
    ...base(s, group),
    outcome: s.writes.length > 0 ? 'bound' : 'unchanged',
    ...(s.targetDriver ? { driver: s.targetDriver } : {}),
  }));
}

/** Loads missing VFIO driver modules when allowed; refuses before any write otherwise. */
async function ensureDrivers(sysfs: HostRoot, steps: DeviceStep[], options: ApplyOptions): Promise<void> {
  for (const s of steps) {
    if (registeredDriverName(sysfs, s.targetDriver!)) continue;
    const module = s.targetModule ?? s.targetDriver!;
    await modprobe(options.modprobe, module, { allow: options.loadModules });
    if (!registeredDriverName(sysfs, s.targetDriver!)) {
      throw new GpuccError(
        'ERR_GPUCC_DRIVER_NOT_LOADED',
        `loading ${module} did not register the ${s.targetDriver} driver`,
        {
          hint: 'check the module for the running kernel (modinfo, dmesg)',
          details: { module, driver: s.targetDriver },
        },
      );
    }
  }
}

/**
 * Checks that need no sysfs write: SR-IOV off, then the NVIDIA driver willing to let go. The locks
 * come last, so a group refused for another reason takes none; each one taken goes into `locked`.
 */
async function preflight(
  sysfs: HostRoot,
  steps: DeviceStep[],
  observation: Observation,
  locked: Set<PciAddress>,
): Promise<void> {
  for (const s of steps) {
    const device = observation.topology.byAddress.get(s.address);
    if (device?.sriov && device.sriov.numVfs > 0) {
      throw new GpuccError('ERR_GPUCC_SRIOV_ENABLED', `${s.address} has ${device.sriov.numVfs} SR-IOV VFs enabled`, {
        hint: `disable them first: echo 0 > /sys/bus/pci/devices/${s.address}/sriov_numvfs`,
        details: { device: s.address },
      });
    }
  }
  for (const s of steps) {
    if (!observation.unbindLocks.has(s.address)) continue;
    locked.add(s.address); // even when refused: the write of 1 went through, so give it back
    if (!(await takeNvidiaUnbindLock(sysfs, s.address))) {
      throw new GpuccError('ERR_GPUCC_DEVICE_IN_USE', `the NVIDIA driver refused the unbind lock of ${s.address}`, {
        hint: 'a process holds the GPU (nvidia-persistenced, a CUDA job): stop it, then retry',
        details: { device: s.address },
      });
    }
  }
}

/**
 * Gives back (writes 0) the NVIDIA unbind lock of each GPU in `locked` (of `group` only, when given)
 * that is still on nvidia: while it is held the driver refuses new clients, so the host's own CUDA
 * users could not open the GPU. One that left nvidia needs nothing: the lock goes with the binding.
 */
async function releaseUnbindLocks(
  sysfs: HostRoot,
  locked: Set<PciAddress>,
  log: Logger,
  group?: GroupPlan,
): Promise<void> {
  for (const address of [...locked]) {
    if (group && !group.steps.some((s) => s.address === address)) continue;
    locked.delete(address);
    const lock = unbindLockPath(address);
    try {
      if (!unbindLockHeld(sysfs, address)) continue;
      await sysfs.write(lock, '0');
      log.info(
        { event: 'bind.unbind_lock_released', device: address },
        `${address} stays on nvidia: unbind lock released`,
      );
    } catch (error) {
      const err = asGpuccError(error);
      log.error({ event: 'bind.unbind_lock_release_failed', device: address, err: err.toJSON() }, err.message);
    }
  }
}

/**
 * Gives back the NVIDIA unbind locks that a killed run recorded (state.unbindLocks) and left taken:
 * under the host lock no other run is holding one on purpose. Each is dropped from the record.
 */
async function releaseStaleUnbindLocks(sysfs: HostRoot, state: VfioState, log: Logger): Promise<void> {
  const stale = new Set((state.unbindLocks ?? []) as PciAddress[]);
  if (stale.size === 0) return;
  await releaseUnbindLocks(sysfs, stale, log);
  settleUnbindLocks(sysfs, state);
}

/** Keeps in state.unbindLocks only the GPUs still on nvidia with their lock taken. */
function settleUnbindLocks(sysfs: HostRoot, state: VfioState): void {
  if (state.unbindLocks === undefined) return;
  const held = state.unbindLocks.filter((a) => unbindLockHeld(sysfs, a as PciAddress));
  if (held.length > 0) state.unbindLocks = held;
  else delete state.unbindLocks;
}

/** Whether a GPU on nvidia has its unbind lock taken (the driver then refuses new clients). */
export function unbindLockHeld(sysfs: HostRoot, address: PciAddress): boolean {
  try {
    return currentDriver(sysfs, address) === 'nvidia' && sysfs.readOptional(unbindLockPath(address))?.trim() === '1';
  } catch {
    return false;
  }
}

/**
 * Undo, in reverse, the functions of one group changed in this run: the recorded override back,
 * off the VFIO driver, back on the recorded driver (or normal matching). A half-converted group is
 * never left behind; entries of devices back where they started are dropped.
 */
async function rollbackGroup(
  sysfs: HostRoot,
  changed: DeviceStep[],
  state: VfioState,
  log: Logger,
  unknown: ReadonlySet<PciAddress>,
): Promise<Array<Record<string, unknown>>> {
  const outcomes: Array<Record<string, unknown>> = [];
  for (const s of [...changed].reverse()) {
    const rec = state.devices[s.address];
    const previous = rec?.previousDriver;
    try {
      const override = currentOverride(sysfs, s.address);
      if (override !== rec?.previousOverride) {
        if (rec?.previousOverride) await setDriverOverride(sysfs, s.address, rec.previousOverride);
        else await clearDriverOverride(sysfs, s.address);
      }
      const now = currentDriver(sysfs, s.address);
      if (now !== previous) {
        if (now) await unbindDevice(sysfs, s.address);
        if (previous) await bindDevice(sysfs, s.address, previous);
        else await probeDevice(sysfs, s.address);
      }
      const back = currentDriver(sysfs, s.address);
      if (back === previous && !unknown.has(s.address)) delete state.devices[s.address];
      outcomes.push({
        device: s.address,
        restored: back === previous,
        driver: back ?? null,
        ...(unknown.has(s.address) ? { recordKept: 'its unbind timed out and may still complete' } : {}),
      });
    } catch (error) {
      const err = asGpuccError(error);
      log.error({ event: 'bind.rollback_failed', device: s.address, err: err.toJSON() }, err.message);
      outcomes.push({ device: s.address, restored: false, error: err.toJSON() });
    }
  }
  return outcomes;
}

/** The device nodes a VM needs: the group node (legacy), or each device's cdev (iommufd, where the kernel makes them). */
async function waitForNodes(sysfs: HostRoot, group: GroupPlan, model: VfioModel, timeoutMs: number): Promise<void> {
  const vfio = group.steps.filter((s) => s.targetDriver && isVfioDriver(s.targetDriver));
  if (vfio.length === 0 || group.group === undefined) return;
  // Someone may unbind a device while we wait for its node (drift): then the node will not come, and
  // the reconcile should fail now and retry, not wait out the deadline.
  const giveUpIf = () => {
    for (const s of vfio) {
      const driver = currentDriver(sysfs, s.address);
      if (!isVfioDriver(driver))
        return new GpuccError(
          'ERR_GPUCC_DEVICE_LEFT_VFIO',
          `${s.address} left ${s.targetDriver} (now ${driver ?? 'unbound'}) while its device node was awaited`,
          {
            hint: 'something else changes this device’s driver; the next reconcile binds it again',
            details: { device: s.address, driver: driver ?? null },
          },
        );
    }
    return undefined;
  };
  if (model === 'iommufd') {
    let cdevs = 0;
    for (const s of vfio) {
      const dir = `sys/bus/pci/devices/${s.address}/vfio-dev`;
      await waitForPath(sysfs, dir, { present: true, timeoutMs, giveUpIf });
      const name = sysfs.readdir(dir).find((n) => /^(noiommu-)?vfio\d+$/.test(n));
      const index = name ? Number(name.replace(/^(noiommu-)?vfio/, '')) : undefined;
      // A registration without `dev`: the kernel has iommufd but no CONFIG_VFIO_DEVICE_CDEV, so no
      // cdev will come and the group node is the device's (docs/facts/kernel-sysfs-pci.md#vfio-cdevs-per-device).
      if (index !== undefined && sysfs.exists(`${dir}/${name}/dev`)) {
        const node = name!.startsWith('noiommu-') ? noiommuCdevPath(index) : vfioCdevPath(index);
        await waitForPath(sysfs, node, { present: true, timeoutMs, giveUpIf });
        cdevs++;
      }
    }
    if (cdevs === vfio.length) return;
  }
  const node = model === 'noiommu' ? noiommuGroupPath(group.group) : vfioGroupPath(group.group);
  await waitForPath(sysfs, node, { present: true, timeoutMs, giveUpIf });
}

/** Carries out a release plan: override back, unbind, and with restore the recorded driver. */
export async function applyRelease(
  sysfs: HostRoot,
  plan: Plan,
  observation: Observation,
  options: ApplyOptions,
): Promise<ApplyReport> {
  const onDisk: VfioState = structuredClone(observation.state);
  const state: VfioState = structuredClone(observation.state);
  const results: DeviceResult[] = [];
  await releaseStaleUnbindLocks(sysfs, state, options.logger);
  const progress = groupProgress(plan, options);
  for (const group of plan.groups) {
    const started = performance.now();
    const before = results.length;
    if (group.refused) {
      // a restore that cannot succeed (bad or unloaded recorded driver): no write, the record stays
      options.logger.error(
        { event: 'release.refused', group: group.group, err: group.refused.toJSON() },
        group.refused.message,
      );
      results.push(
        ...group.steps.map((s) => ({ ...base(s, group), outcome: 'refused' as const, error: group.refused!.toJSON() })),
      );
      progress(group, results.slice(before));
      continue;
    }
    for (const s of group.steps) {
      const log = options.logger.child({ device: s.address });
      if (s.writes.length === 0) {
        if (s.targetDriver && s.currentDriver === s.targetDriver) delete state.devices[s.address];
        results.push({ ...base(s, group), outcome: 'unchanged' });
        continue;
      }
      try {
        for (const w of s.writes) {
          if (w.path.endsWith('/driver_override')) {
            if (w.value === '\n') await clearDriverOverride(sysfs, s.address);
            else await setDriverOverride(sysfs, s.address, w.value);
          } else if (w.path.endsWith('/unbind')) {
            await unbindDevice(sysfs, s.address, { timeoutMs: options.unbindTimeoutMs });
          } else if (w.path.endsWith('/drivers_probe')) {
            await probeDevice(sysfs, s.address);
          } else {
            await bindDevice(sysfs, s.address, s.targetDriver!);
          }
        }
        const now = currentDriver(sysfs, s.address);
        const restored =
          plan.desired === 'none' && s.writes.some((w) => w.path.endsWith('/bind') || w.path.endsWith('drivers_probe'));
        if (restored) delete state.devices[s.address];
        log.info(
          { event: restored ? 'restore.device' : 'release.device', driver: now ?? null },
          `${s.address} is on ${now ?? 'no driver'}`,
        );
        results.push({
          ...base(s, group),
          outcome: restored ? 'restored' : 'released',
          ...(now ? { driver: now } : {}),
        });
      } catch (error) {
        const err = asGpuccError(error);
        log.error({ event: 'release.failed', err: err.toJSON() }, err.message);
        results.push(failed(s, group, err));
      }
    }
    progress(group, results.slice(before), performance.now() - started);
  }
  if (JSON.stringify(state) !== JSON.stringify(onDisk)) await writeState(sysfs, state, onDisk);
  results.push(...unreadableOwnDevices(observation));
  return { ok: results.every((r) => r.outcome !== 'failed' && r.outcome !== 'refused'), results };
}

/**
 * The progress of one run, a line per group it changes or refuses (groups already in place show
 * none): `group 34  0000:18:00.0 bound to vfio-pci  0.04 s`, or `failed: …` with its first error.
 */
function groupProgress(
  plan: Plan,
  options: ApplyOptions,
): (group: GroupPlan, done: DeviceResult[], ms?: number) => void {
  const shown = new Set(plan.groups.filter((g) => g.refused || g.steps.some((s) => s.writes.length > 0)));
  const sink = shown.size > 0 ? options.progress?.(shown.size) : undefined;
  return (group, done, ms) => {
    if (!sink || !shown.has(group)) return;
    const device = group.group === undefined ? (group.steps[0]?.address ?? '') : `group ${group.group}`;
    const bad = done.find((r) => r.outcome === 'failed' || r.outcome === 'refused' || r.outcome === 'rolled-back');
    if (bad) {
      const message = typeof bad.error?.message === 'string' ? bad.error.message : bad.outcome;
      sink({ device, what: `${bad.outcome === 'refused' ? 'refused' : 'failed'}: ${message}`, ok: false });
      return;
    }
    const moved = done.filter((r) => r.outcome !== 'unchanged');
    const phrases = new Set(moved.map(movedPhrase));
    const what =
      phrases.size === 1
        ? `${moved.map((r) => r.address).join(', ')} ${[...phrases][0]}`
        : moved.map((r) => `${r.address} ${movedPhrase(r)}`).join(', ');
    sink({ device, what, ...(ms === undefined ? {} : { ms }), ok: true });
  };
}

function movedPhrase(r: DeviceResult): string {
  if (r.outcome === 'bound') return `bound to ${r.driver ?? 'its VFIO driver'}`;
  if (r.outcome === 'restored') return `back on ${r.driver ?? 'its driver'}`;
  return r.driver ? `released, on ${r.driver}` : 'released';
}

/**
 * Devices vfio-manager moved (they have a record) that discovery could not read now: nothing can be
 * done for them (no write to a device it cannot see whole), and the command must not say it is done.
 */
function unreadableOwnDevices(observation: Observation): DeviceResult[] {
  return observation.topology.problems
    .filter((p) => typeof p.details.address === 'string' && observation.state.devices[p.details.address])
    .map((p) => ({ address: p.details.address as PciAddress, outcome: 'failed' as const, error: p.toJSON() }));
}

function record(s: DeviceStep, group: GroupPlan): DeviceRecord {
  return {
    ...(s.currentDriver ? { previousDriver: s.currentDriver } : {}),
    ...(s.currentOverride ? { previousOverride: s.currentOverride } : {}),
    targetDriver: s.targetDriver!,
    ...(group.group === undefined ? {} : { group: group.group }),
    phase: 'binding',
  };
}

function base(s: DeviceStep, group: GroupPlan): DeviceResult {
  return { address: s.address, ...(group.group === undefined ? {} : { group: group.group }), outcome: 'unchanged' };
}

function failed(s: DeviceStep, group: GroupPlan, error: GpuccError): DeviceResult {
  return { ...base(s, group), outcome: 'failed', error: error.toJSON() };
}

function interrupted(group: GroupPlan): DeviceResult[] {
  return group.steps.map((s) => failed(s, group, abortedError()));
}

function abortedError(): GpuccError {
  return new GpuccError('ERR_GPUCC_INTERRUPTED', 'stopped before this group (shutdown requested)', {
    hint: 'the next run picks it up; nothing of this group was written',
  });
}

/** A write that did not return in time (directly, or as the cause of an unbind failure): its outcome is unknown. */
function timedOut(error: GpuccError): boolean {
  return error.code === WRITE_TIMEOUT || (isGpuccError(error.cause) && error.cause.code === WRITE_TIMEOUT);
}

function asGpuccError(error: unknown): GpuccError {
  if (isGpuccError(error)) return error;
  return new GpuccError('ERR_GPUCC_SYSFS_WRITE', (error as Error)?.message ?? String(error), {
    hint: 'unexpected failure; see the cause',
    cause: error,
  });
}
