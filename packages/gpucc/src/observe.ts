import {
  type AdvertisedDeviceRecord,
  CC_MANAGER_READY_MARKER,
  type CcModesRecord,
  comparePciAddresses,
  DEVICE_PLUGIN_DIR,
  detectHostTee,
  detectVfioModel,
  discoverPci,
  findHolders,
  groupIntoUnits,
  type HolderScan,
  type HostRoot,
  type HostTee,
  holdersOf,
  type KubeletCheckpoint,
  kernelRelease,
  loadPciIds,
  lookupNvidiaDeviceName,
  messageOf,
  type PciAddress,
  type PciDevice,
  type PciTopology,
  PLUGIN_SOCKET_PREFIX,
  readAdvertisedDevices,
  readCcModes,
  readKubeletCheckpoint,
  readVfioManagerState,
  VFIO_CONTAINER_PATH,
  VFIO_MANAGER_STATE_FILE,
  type VfioDeviceRecord,
  type VfioHostModel,
  type VfioModel,
  vfioDeviceUnit,
} from '@gpucc/hal';
import { type CdiDevice, readCdiSpecs } from './cdi.js';

/**
 * Reads the whole node into plain data, read-only: sysfs (devices, groups, drivers, VFIO nodes),
 * the operands' files (cc-manager's modes and readiness marker, vfio-manager's state, the CDI specs,
 * the device plugin's record), the kubelet's checkpoint and the host's proc/ (holders). Whatever
 * cannot be read is said in `unreadable` and the rest goes on: a captured tree has no proc/, a host
 * without Kubernetes has no kubelet dir.
 */

export interface HostHeader {
  nodeName?: string;
  tee: HostTee;
  kernel: string;
  /** `host`: proc/sys/kernel/osrelease under the root; `local`: the kernel gpucc runs on (no host proc/). */
  kernelSource: 'host' | 'local';
  os?: string;
  cpu?: string;
  iommu: boolean;
  vfioModel: VfioModel;
}

export type OperandName = 'cc-manager' | 'vfio-manager' | 'kata-manager' | 'sandbox-device-plugin';

export interface OperandState {
  name: OperandName;
  /** `ready`/`not ready` from a marker or a live socket; `seen` when only its files say it ran; `absent` when nothing does. */
  state: 'ready' | 'not ready' | 'seen' | 'absent';
  /** What the state was read from. */
  evidence: string;
}

export interface Allocation {
  podUid: string;
  container: string;
}

export interface HolderView {
  pid: number;
  comm: string;
  vm: boolean;
}

export interface DeviceRow {
  address: string;
  kind: 'gpu' | 'nvswitch';
  model: string;
  numaNode: number | null;
  iommuGroup: number | null;
  /** The other functions of its IOMMU group. */
  groupMembers: string[];
  driver: string | null;
  /** The unit's own VFIO device nodes (absolute host paths) that exist: its group node or its cdevs. */
  vfioNodes: string[];
  /** As cc-manager last recorded them; null when it recorded nothing for this device. */
  cc: { cc: string | null; ppcie: string | null; desired: string | null } | null;
  /** `<kind>=<name>` of the CDI device that names it, and its spec file. */
  cdi: { name: string; file: string } | null;
  /** As the device plugin last recorded it. */
  advertised: { resource: string; id: string; health: string; reason: string | null } | null;
  allocations: Allocation[];
  holders: HolderView[];
  /** vfio-manager's record of it: `bound`, `binding`, or null when vfio-manager never moved it. */
  vfioManager: { phase: string; targetDriver: string } | null;
}

export interface NodeView {
  hostRoot: string;
  header: HostHeader;
  operands: OperandState[];
  devices: DeviceRow[];
  /** CDI devices whose nodes are not on the host (absolute paths). */
  cdiMissingNodes: Array<{ name: string; file: string; missing: string[] }>;
  /** Advertised devices that no CDI spec names. */
  advertisedWithoutSpec: Array<{ resource: string; id: string }>;
  /** What could not be read, one line each. */
  unreadable: string[];
  /** Whether holders are known: the host's proc/ was readable. */
  holdersKnown: boolean;
  /** Whether allocations are known: the kubelet checkpoint was read. */
  allocationsKnown: boolean;
}

export interface ObserveOptions {
  /** From --node-name / NODE_NAME; etc/hostname under the root otherwise. */
  nodeName?: string;
  /** The CDI spec directories, host paths: /var/run/cdi and /etc/cdi. */
  cdiDirs?: readonly string[];
}

export async function observeNode(sysfs: HostRoot, options: ObserveOptions = {}): Promise<NodeView> {
  const unreadable: string[] = [];
  /** Reads one source; a failure becomes a line in `unreadable` and the fallback. */
  function attempt<T>(what: string, read: () => T, fallback: T): T {
    try {
      return read();
    } catch (error) {
      unreadable.push(`${what}: ${messageOf(error)}`);
      return fallback;
    }
  }

  if (sysfs.kindOf('sys/bus/pci/devices') === undefined)
    unreadable.push('no sys/bus/pci/devices under the root: no PCI device could be read');
  const topology = discoverPci(sysfs);
  for (const problem of topology.problems) unreadable.push(`PCI: ${problem.message}`);
  const model = detectVfioModel(sysfs);
  const header = readHeader(sysfs, model.model, model.iommuEnabled, options.nodeName);
  const pciIds = attempt('pci.ids', () => loadPciIds(sysfs), undefined);

  const ccModes = attempt('cc-manager modes record', () => readCcModes(sysfs), {} as Record<string, CcModesRecord>);
  const vfioRecords = attempt(
    'vfio-manager state',
    () => readVfioManagerState(sysfs),
    {} as Record<string, VfioDeviceRecord>,
  );
  const advertised = attempt(
    'device plugin record',
    () => readAdvertisedDevices(sysfs),
    {} as Record<string, AdvertisedDeviceRecord>,
  );
  const cdi = readCdiSpecs(sysfs, options.cdiDirs ?? ['/var/run/cdi', '/etc/cdi']);
  unreadable.push(...cdi.unreadable);

  const kubeletDir = sysfs.kindOf(DEVICE_PLUGIN_DIR) === 'dir';
  const checkpoint: KubeletCheckpoint = kubeletDir
    ? attempt('kubelet checkpoint', () => readKubeletCheckpoint(sysfs), { state: 'absent' })
    : { state: 'absent' };
  if (!kubeletDir) unreadable.push(`no kubelet dir (/${DEVICE_PLUGIN_DIR}): allocations unknown`);
  else if (checkpoint.state === 'invalid') unreadable.push(`kubelet checkpoint: ${checkpoint.reason}`);
  else if (checkpoint.state === 'absent') unreadable.push('no kubelet checkpoint yet: allocations unknown');

  const holders: HolderScan = attempt('proc/', () => findHolders(sysfs), {
    readable: false,
    holders: [],
    unreadable: 0,
  });
  if (!holders.readable) unreadable.push('no proc/ of the host under the root: holders unknown');
  else if (holders.unreadable > 0)
    unreadable.push(`${holders.unreadable} process(es) whose fds could not be read (run as root to see them)`);

  const devices = deviceRows(sysfs, topology, model, {
    pciIds: (id) => lookupNvidiaDeviceName(pciIds, id),
    ccModes,
    vfioRecords,
    advertised: Object.values(advertised),
    cdiByNode: byNode(cdi.devices),
    checkpoint,
    holders,
    unreadable,
  });

  const cdiMissingNodes = cdi.devices.flatMap((d) => {
    const missing = d.deviceNodes.filter((node) => !sysfs.exists(node.slice(1)));
    return missing.length > 0 ? [{ name: d.name, file: d.file, missing }] : [];
  });
  const cdiNames = new Set(cdi.devices.map((d) => d.name));
  const advertisedWithoutSpec = Object.values(advertised)
    .filter((a) => a.health === 'Healthy' && !cdiNames.has(`${a.resourceName}=${a.id}`))
    .map((a) => ({ resource: a.resourceName, id: a.id }));

  return {
    hostRoot: sysfs.root,
    header,
    operands: await operandStates(sysfs, { ccModes, vfioRecords, advertised, cdiCount: cdi.devices.length }),
    devices,
    cdiMissingNodes,
    advertisedWithoutSpec,
    unreadable,
    holdersKnown: holders.readable,
    allocationsKnown: checkpoint.state === 'read',
  };
}

interface RowSources {
  pciIds: (deviceId: number) => string | undefined;
  ccModes: Record<string, CcModesRecord>;
  vfioRecords: Record<string, VfioDeviceRecord>;
  advertised: AdvertisedDeviceRecord[];
  /** The CDI devices naming each device node: a row finds its own in one look-up. */
  cdiByNode: ReadonlyMap<string, CdiDevice[]>;
  checkpoint: KubeletCheckpoint;
  holders: HolderScan;
  unreadable: string[];
}

function deviceRows(sysfs: HostRoot, topology: PciTopology, model: VfioHostModel, sources: RowSources): DeviceRow[] {
  const targets = topology.devices.filter((d) => d.kind === 'gpu' || d.kind === 'nvswitch');
  const rows: DeviceRow[] = [];
  for (const unitTargets of groupIntoUnits(targets)) {
    let nodes: string[] = [];
    try {
      nodes = vfioDeviceUnit(unitTargets, topology, model).nodes.map((n) => `/${n}`);
    } catch {
      // on VFIO without an IOMMU group: the row shows no node, the kernel facts say why
    }
    // /dev/vfio/vfio is every legacy unit's: it names no GPU.
    const present = nodes.filter((n) => n !== `/${VFIO_CONTAINER_PATH}` && sysfs.exists(n.slice(1)));
    for (const device of unitTargets) rows.push(deviceRow(topology, device, present, sources));
  }
  // numeric: a 5-digit (Intel VMD) domain sorts after ffff:
  return rows.sort((a, b) => comparePciAddresses(a.address as PciAddress, b.address as PciAddress));
}

function deviceRow(topology: PciTopology, device: PciDevice, vfioNodes: string[], sources: RowSources): DeviceRow {
  const group = device.iommuGroup === undefined ? [] : (topology.groups.get(device.iommuGroup) ?? []);
  const advertised = sources.advertised.find((a) => a.functions.includes(device.address));
  // The CDI device naming this GPU: the one whose nodes are the unit's (independent of naming options).
  const unitNodes = vfioNodes;
  const cdi =
    unitNodes.length > 0
      ? sources.cdiByNode.get(unitNodes[0]!)?.find((c) => unitNodes.every((n) => c.deviceNodes.includes(n)))
      : undefined;
  const resource = advertised
    ? { name: advertised.resourceName, id: advertised.id }
    : cdi
      ? { name: cdi.name.split('=')[0]!, id: cdi.name.split('=')[1]! }
      : undefined;
  const allocations =
    sources.checkpoint.state === 'read' && resource
      ? sources.checkpoint.allocations
          .filter((a) => a.resourceName === resource.name && a.deviceIds.includes(resource.id))
          .map((a) => ({ podUid: a.podUid, container: a.containerName }))
      : [];
  // One row per process, whichever of the device's nodes it holds (group, cdev, /dev/nvidiaN).
  const held = [...new Map(holdersOf(sources.holders, device.address).map((h) => [h.pid, h])).values()].map((h) => ({
    pid: h.pid,
    comm: h.comm,
    vm: h.vm,
  }));
  const cc = sources.ccModes[device.address];
  const vfio = sources.vfioRecords[device.address];
  return {
    address: device.address,
    kind: device.kind === 'nvswitch' ? 'nvswitch' : 'gpu',
    model: sources.pciIds(device.device) ?? `10de:${device.device.toString(16).padStart(4, '0')}`,
    numaNode: device.numaNode >= 0 ? device.numaNode : null,
    iommuGroup: device.iommuGroup ?? null,
    groupMembers: group.filter((a) => a !== device.address),
    driver: device.driver ?? null,
    vfioNodes,
    cc: cc ? { cc: cc.cc ?? null, ppcie: cc.ppcie ?? null, desired: cc.desired ?? null } : null,
    cdi: cdi ? { name: cdi.name, file: cdi.file } : null,
    advertised: advertised
      ? {
          resource: advertised.resourceName,
          id: advertised.id,
          health: advertised.health,
          reason: advertised.reason ?? null,
        }
      : null,
    allocations,
    holders: held,
    vfioManager: vfio ? { phase: vfio.phase, targetDriver: vfio.targetDriver } : null,
  };
}

function byNode(devices: CdiDevice[]): Map<string, CdiDevice[]> {
  const map = new Map<string, CdiDevice[]>();
  for (const device of devices) {
    for (const node of device.deviceNodes) {
      const list = map.get(node);
      if (list) list.push(device);
      else map.set(node, [device]);
    }
  }
  return map;
}

/** `/dev/nvidia<minor>` of a GPU on the NVIDIA driver (docs/facts/real-hosts.md#nvidia-device-nodes). */
function readHeader(sysfs: HostRoot, vfioModel: VfioModel, iommu: boolean, nodeName: string | undefined): HostHeader {
  const hostname = sysfs.readOptional('etc/hostname')?.trim();
  const name = nodeName ?? (hostname || undefined);
  const os = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(sysfs.readOptional('etc/os-release') ?? '')?.[1];
  const cpu = /^model name\s*:\s*(.+)$/m.exec(sysfs.readOptional('proc/cpuinfo') ?? '')?.[1]?.trim();
  return {
    ...(name ? { nodeName: name } : {}),
    tee: detectHostTee(sysfs),
    kernel: kernelRelease(sysfs),
    kernelSource: sysfs.exists('proc/sys/kernel/osrelease') ? 'host' : 'local',
    ...(os ? { os } : {}),
    ...(cpu ? { cpu } : {}),
    iommu,
    vfioModel,
  };
}

async function operandStates(
  sysfs: HostRoot,
  seen: {
    ccModes: Record<string, unknown>;
    vfioRecords: Record<string, unknown>;
    advertised: Record<string, AdvertisedDeviceRecord>;
    cdiCount: number;
  },
): Promise<OperandState[]> {
  // A socket left by a killed plugin has no listener: only live ones count.
  const sockets = sysfs.readdir(DEVICE_PLUGIN_DIR).filter((n) => n.startsWith(PLUGIN_SOCKET_PREFIX));
  const live = await Promise.all(sockets.map((n) => sysfs.socketHasListener(`${DEVICE_PLUGIN_DIR}/${n}`, 300)));
  const pluginSockets = sockets.filter((_n, i) => live[i]);
  const ccReady = sysfs.exists(CC_MANAGER_READY_MARKER);
  return [
    ccReady
      ? { name: 'cc-manager', state: 'ready', evidence: `/${CC_MANAGER_READY_MARKER}` }
      : Object.keys(seen.ccModes).length > 0
        ? { name: 'cc-manager', state: 'not ready', evidence: 'modes recorded, no readiness marker' }
        : { name: 'cc-manager', state: 'absent', evidence: 'no readiness marker, no modes recorded' },
    Object.keys(seen.vfioRecords).length > 0
      ? { name: 'vfio-manager', state: 'seen', evidence: `/${VFIO_MANAGER_STATE_FILE}` }
      : { name: 'vfio-manager', state: 'absent', evidence: 'no state file' },
    seen.cdiCount > 0
      ? { name: 'kata-manager', state: 'seen', evidence: `${seen.cdiCount} CDI device(s) on disk` }
      : { name: 'kata-manager', state: 'absent', evidence: 'no CDI spec names a VFIO device' },
    pluginSockets.length > 0
      ? {
          name: 'sandbox-device-plugin',
          state: 'ready',
          evidence: `socket ${pluginSockets.join(', ')}`,
        }
      : Object.keys(seen.advertised).length > 0
        ? {
            name: 'sandbox-device-plugin',
            state: 'not ready',
            evidence: sockets.length > 0 ? 'socket without a listener' : 'devices recorded, no socket',
          }
        : { name: 'sandbox-device-plugin', state: 'absent', evidence: 'no socket, no record' },
  ];
}
