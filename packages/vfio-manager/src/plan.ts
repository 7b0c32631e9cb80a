import {
  GpuccError,
  isBridge,
  isGpuccError,
  isVfioDriver,
  isViableGroupMember,
  type PciAddress,
  type PciDevice,
  validateDriverName,
} from '@gpucc/hal';
import { driverNameFor, heldBy, type Observation, targetModuleFor } from './observe.js';
import { ownFunctions, type Selection, selectTargets } from './select.js';

export type Role = 'gpu' | 'nvswitch' | 'card-function' | 'group-member' | 'foreign-member';

/** One sysfs store, as the user will see it in `plan`. */
export interface PlannedWrite {
  path: string;
  value: string;
}

export interface DeviceStep {
  address: PciAddress;
  role: Role;
  id: string;
  currentDriver?: string;
  currentOverride?: string;
  /** Processes with its device node open (`nvidia-persistenced (pid 1234)`). */
  heldBy?: string[];
  targetDriver?: string;
  targetModule?: string;
  /** Empty when the device is already where it should be. */
  writes: PlannedWrite[];
  reason: string;
}

export interface GroupPlan {
  /** undefined: a device without an IOMMU group (IOMMU off). */
  group?: number;
  steps: DeviceStep[];
  /** The whole group is refused; no write happens for it. */
  refused?: GpuccError;
}

export interface Plan {
  desired: 'vfio' | 'none';
  groups: GroupPlan[];
}

export interface PlanOptions {
  nvswitches: boolean;
  allowForeignGroupMembers: boolean;
}

const id = (d: PciDevice) => `${d.vendor.toString(16).padStart(4, '0')}:${d.device.toString(16).padStart(4, '0')}`;
const devPath = (address: PciAddress, attr: string) => `/sys/bus/pci/devices/${address}/${attr}`;

/** The three stores that move one function to a driver: override, unbind (when bound), bind. */
export function bindWrites(device: PciDevice, driver: string): PlannedWrite[] {
  if (device.driver === driver) return [];
  const writes: PlannedWrite[] = [];
  if (device.driverOverride !== driver)
    writes.push({ path: devPath(device.address, 'driver_override'), value: driver });
  if (device.driver) writes.push({ path: `/sys/bus/pci/drivers/${device.driver}/unbind`, value: device.address });
  writes.push({ path: `/sys/bus/pci/drivers/${driver}/bind`, value: device.address });
  return writes;
}

/**
 * bind: every selected GPU (and NVSwitch with --nvswitches), every function of its card and every
 * non-bridge endpoint of its IOMMU group, to its VFIO driver. Pure: no host access.
 */
export function planBind(observation: Observation, selection: Selection, options: PlanOptions): Plan {
  const targets = selectTargets(observation, selection, { nvswitches: options.nvswitches });
  const { topology } = observation;
  const own = ownFunctions(observation, targets);
  const primaries = new Set(targets.map((t) => t.address));

  // Group the work by IOMMU group: the kernel's unit of isolation, converted all-or-nothing.
  const byGroup = new Map<number | undefined, Set<PciAddress>>();
  for (const address of own) {
    const group = topology.byAddress.get(address)?.iommuGroup;
    const members = byGroup.get(group) ?? new Set<PciAddress>();
    members.add(address);
    if (group !== undefined) for (const member of topology.groups.get(group) ?? []) members.add(member);
    byGroup.set(group, members);
  }

  const groups: GroupPlan[] = [];
  for (const [group, members] of [...byGroup].sort(([a], [b]) => (a ?? -1) - (b ?? -1))) {
    const steps: DeviceStep[] = [];
    let refused: GpuccError | undefined;
    for (const address of [...members].sort()) {
      const device = topology.byAddress.get(address);
      if (!device) {
        refused ??= unreadableMember(address, group);
        continue;
      }
      if (isBridge(device)) continue; // bridges need no binding and vfio-pci refuses them
      const role: Role = primaries.has(address)
        ? device.kind === 'nvswitch'
          ? 'nvswitch'
          : 'gpu'
        : own.has(address)
          ? 'card-function'
          : device.vendor === 0x10de
            ? 'group-member'
            : 'foreign-member';
      const module = targetModuleFor(observation, address, primaries.has(address));
      const driver = driverNameFor(observation, module);
      // One rule with the kernel's (and status's): unbound, a VFIO driver or pci-stub keeps the group viable.
      const safe = isViableGroupMember(device.driver, false);
      if (role === 'foreign-member' && !options.allowForeignGroupMembers && !safe) {
        refused ??= new GpuccError(
          'ERR_GPUCC_FOREIGN_GROUP_MEMBER',
          `IOMMU group ${group} also holds ${address} (${id(device)}) on ${device.driver}`,
          {
            hint: 'passing the group through would take that device from the host: move it, or pass --allow-foreign-group-members',
            details: { group, device: address, id: id(device), driver: device.driver },
          },
        );
      }
      if (role === 'foreign-member' && safe && !options.allowForeignGroupMembers) {
        steps.push(step(device, role, undefined, undefined, [], 'foreign group member already safe for passthrough'));
        continue;
      }
      const writes = bindWrites(device, driver);
      const why = reasonFor(role, writes.length === 0, driver, options.allowForeignGroupMembers);
      const planned = withHolders(step(device, role, driver, module, writes, why), observation);
      if (planned.heldBy && writes.some(isUnbind)) refused ??= heldError(planned);
      steps.push(planned);
    }
    if (group === undefined) {
      refused = new GpuccError('ERR_GPUCC_IOMMU_OFF', `${[...members].join(', ')} has no IOMMU group`, {
        hint: observation.model.iommuEnabled
          ? 'the device is outside every IOMMU group; check the firmware (ACS, DMAR/IVRS tables)'
          : 'the IOMMU is off: add amd_iommu=on or intel_iommu=on (and iommu=pt) to the kernel command line and reboot',
        details: { devices: [...members] },
      });
    }
    groups.push({ ...(group === undefined ? {} : { group }), steps, ...(refused ? { refused } : {}) });
  }
  return { desired: 'vfio', groups };
}

const isUnbind = (w: PlannedWrite) => w.path.endsWith('/unbind');

/** The step with the processes that hold its device, if any. */
function withHolders(s: DeviceStep, observation: Observation): DeviceStep {
  const held = heldBy(observation, s.address);
  return held.length ? { ...s, heldBy: held } : s;
}

/**
 * A held device is never unbound: on the data-centre NVIDIA driver the unbind would block until the
 * holder exits (docs/facts/real-hosts.md#an-nvidia-unbind-waits-for-the-last-client), and a VM's
 * device would be torn from the running guest. The group is refused; other groups go on.
 */
function heldError(s: DeviceStep): GpuccError {
  const who = s.heldBy!.join(', ');
  return new GpuccError(
    'ERR_GPUCC_DEVICE_IN_USE',
    `${who} ${s.heldBy!.length > 1 ? 'hold' : 'holds'} ${s.address}: stop it, then retry`,
    {
      hint: 'an unbind under a holder blocks until it exits; nothing of this IOMMU group was written, the other GPUs go on',
      details: { device: s.address, holders: s.heldBy },
    },
  );
}

function unreadableMember(address: PciAddress, group: number | undefined): GpuccError {
  return new GpuccError(
    'ERR_GPUCC_MALFORMED_ATTRIBUTE',
    `IOMMU group ${group} holds ${address}, which could not be read`,
    {
      hint: 'gpucc does not bind a group it cannot see whole; see the discovery problem reported for that device',
      details: { group, device: address },
    },
  );
}

function step(
  device: PciDevice,
  role: Role,
  targetDriver: string | undefined,
  targetModule: string | undefined,
  writes: PlannedWrite[],
  reason: string,
): DeviceStep {
  return {
    address: device.address,
    role,
    id: id(device),
    ...(device.driver ? { currentDriver: device.driver } : {}),
    ...(device.driverOverride ? { currentOverride: device.driverOverride } : {}),
    ...(targetDriver ? { targetDriver } : {}),
    ...(targetModule ? { targetModule } : {}),
    writes,
    reason,
  };
}

function reasonFor(role: Role, converged: boolean, driver: string, foreignAllowed: boolean): string {
  const why = {
    gpu: 'selected GPU',
    nvswitch: 'selected NVSwitch',
    'card-function': 'another function of the same card',
    'group-member': 'member of the same IOMMU group',
    'foreign-member': foreignAllowed
      ? 'foreign member of the IOMMU group (allowed by --allow-foreign-group-members)'
      : 'foreign member of the IOMMU group on a host driver: the group is refused',
  }[role];
  return converged ? `${why}; already on ${driver}` : why;
}

/** Whether anything in the plan would write. */
export function planWrites(plan: Plan): number {
  return plan.groups.reduce((n, g) => n + (g.refused ? 0 : g.steps.reduce((m, s) => m + s.writes.length, 0)), 0);
}

export interface ReleaseOptions {
  nvswitches: boolean;
  /** Bind each device back to the driver recorded at bind time (else leave it unbound). */
  restore: boolean;
}

/**
 * unbind: releases the selected GPUs, their cards and the group members gpucc moved, from VFIO.
 * With restore, each goes back to its recorded driver (or to normal matching via drivers_probe when
 * none was recorded). Pure.
 */
export function planRelease(observation: Observation, selection: Selection, options: ReleaseOptions): Plan {
  const targets = selectTargets(observation, selection, { nvswitches: options.nvswitches });
  const { topology, state } = observation;
  const own = ownFunctions(observation, targets);
  const primaries = new Set(targets.map((t) => t.address));
  for (const target of targets) {
    // group members gpucc moved for this target come back with it
    for (const member of topology.groups.get(target.iommuGroup ?? -1) ?? []) if (state.devices[member]) own.add(member);
  }
  const byGroup = new Map<number | undefined, DeviceStep[]>();
  const refusals = new Map<number | undefined, GpuccError>();
  for (const address of [...own].sort()) {
    const device = topology.byAddress.get(address);
    if (!device || isBridge(device)) continue;
    const record = state.devices[address];
    const onVfio = device.driver !== undefined && isVfioDriver(device.driver);
    if (!onVfio && !(options.restore && record)) continue; // never touch what is not ours to release
    const role: Role = primaries.has(address)
      ? device.kind === 'nvswitch'
        ? 'nvswitch'
        : 'gpu'
      : device.vendor === 0x10de
        ? 'card-function'
        : 'foreign-member';
    const writes: PlannedWrite[] = [];
    const wantOverride = options.restore ? record?.previousOverride : undefined;
    if (device.driverOverride !== wantOverride) {
      writes.push({ path: devPath(address, 'driver_override'), value: wantOverride ?? '\n' });
    }
    const previous = options.restore ? record?.previousDriver : undefined;
    if (device.driver && device.driver !== previous)
      writes.push({ path: `/sys/bus/pci/drivers/${device.driver}/unbind`, value: address });
    if (options.restore && device.driver !== previous) {
      writes.push(
        previous
          ? { path: `/sys/bus/pci/drivers/${previous}/bind`, value: address }
          : { path: '/sys/bus/pci/drivers_probe', value: address },
      );
    }
    if (options.restore && previous !== undefined && device.driver !== previous) {
      const problem = restoreProblem(observation, address, previous);
      if (problem) refusals.set(device.iommuGroup, refusals.get(device.iommuGroup) ?? problem);
    }
    const steps = byGroup.get(device.iommuGroup) ?? [];
    const reason = options.restore
      ? previous
        ? `restore to ${previous}, recorded at bind time`
        : 'no previous driver recorded: normal matching (drivers_probe)'
      : 'release from VFIO, leave unbound';
    const planned = withHolders(step(device, role, previous, undefined, writes, reason), observation);
    if (planned.heldBy && writes.some(isUnbind) && !refusals.has(device.iommuGroup))
      refusals.set(device.iommuGroup, heldError(planned));
    steps.push(planned);
    byGroup.set(device.iommuGroup, steps);
  }
  return {
    desired: 'none',
    groups: [...byGroup]
      .sort(([a], [b]) => (a ?? -1) - (b ?? -1))
      .map(([group, steps]) => {
        const refused = refusals.get(group);
        return { ...(group === undefined ? {} : { group }), steps, ...(refused ? { refused } : {}) };
      }),
  };
}

/**
 * Why a recorded previous driver cannot be restored, checked before the first write (else the
 * device would be unbound and then left with no driver): a name that is no driver name (a path, a
 * hand-edited state file), or a driver that is not loaded (restore loads no module).
 */
function restoreProblem(observation: Observation, address: PciAddress, previous: string): GpuccError | undefined {
  try {
    validateDriverName(previous);
  } catch (error) {
    if (!isGpuccError(error)) throw error;
    return new GpuccError(
      error.code,
      `${address}: the recorded previous driver ${JSON.stringify(previous)} is not a driver name`,
      {
        hint: 'the state file was edited or damaged: fix that entry (a driver name such as nvidia) and retry; nothing was written',
        details: { device: address, previousDriver: previous },
      },
    );
  }
  if (observation.drivers.has(previous)) return undefined;
  return new GpuccError('ERR_GPUCC_DRIVER_NOT_LOADED', `${address}: its previous driver ${previous} is not loaded`, {
    hint: `load it (modprobe ${previous}) and retry: restore loads no module; the device stays where it is and keeps its record`,
    details: { device: address, previousDriver: previous },
  });
}
