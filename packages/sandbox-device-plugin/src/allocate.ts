import { compareDeviceIds, GpuccError } from '@gpucc/hal';
import type {
  AllocateRequest,
  AllocateResponse,
  ContainerAllocateResponse,
  ContainerPreferredAllocationRequest,
  DeviceSpec,
  PreferredAllocationRequest,
  PreferredAllocationResponse,
} from '@gpucc/hal/kubelet';
import type { PluginDevice } from './inventory.js';
import { type TopologyPolicy, type TopologyRule, topologyRefusal } from './topology.js';

/** The gRPC status an allocation error is answered with. */
export type RefusalStatus = 'NOT_FOUND' | 'INVALID_ARGUMENT' | 'FAILED_PRECONDITION' | 'UNAVAILABLE';

/** The CC topology rule in force for one call (docs/facts/cc-topology.md#the-rules). */
export interface TopologyCheck {
  rule: TopologyRule;
  policy: TopologyPolicy;
  /** Told of each refusal that the `warn` policy lets through. */
  warn: (error: GpuccError) => void;
}

export interface AllocationContext {
  resourceName: string;
  /** The devices served for this resource now, by ID. */
  devices: ReadonlyMap<string, PluginDevice>;
  /** Also name each device in `cdi_devices` (`nvidia.com/pgpu=12`), for CDI-enabled runtimes. */
  cdiDevices: boolean;
  /** The CC topology rule, read at each call; absent = no check. */
  topology?: TopologyCheck;
}

/** Device nodes are opened read-write; `m` lets the container create the node if it must. */
const PERMISSIONS = 'mrw';

/**
 * The Allocate answer: one response per container request, in order. Each names the device nodes of
 * its devices (host path == container path, each path once) and, when enabled, their CDI names. The
 * IDs are sorted first, so the same set always gives the same response (the kubelet checkpoints it).
 * An unknown, unhealthy or missing ID refuses the whole request: the pod then fails admission
 * instead of starting without its GPU.
 */
export function allocate(request: AllocateRequest, context: AllocationContext): AllocateResponse {
  if (request.container_requests.length === 0) {
    throw refusal(context, 'INVALID_ARGUMENT', 'the request has no container requests');
  }
  return { container_responses: request.container_requests.map((c) => containerResponse(c.devices_ids, context)) };
}

function containerResponse(ids: string[], context: AllocationContext): ContainerAllocateResponse {
  const wanted = [...new Set(ids)].sort(compareDeviceIds);
  if (wanted.length === 0) throw refusal(context, 'INVALID_ARGUMENT', 'a container request names no device');
  const devices = wanted.map((id) => servedHealthy(id, context));
  checkTopology(context, devices[0]!.type, devices.length);
  const specs = new Map<string, DeviceSpec>();
  for (const device of devices) {
    for (const path of device.deviceNodes) {
      if (!specs.has(path)) specs.set(path, { container_path: path, host_path: path, permissions: PERMISSIONS });
    }
  }
  return {
    envs: {},
    mounts: [],
    devices: [...specs.values()],
    annotations: {},
    cdi_devices: context.cdiDevices ? devices.map((d) => ({ name: `${d.cdiKind}=${d.id}` })) : [],
  };
}

/**
 * Refuses a set a confidential VM cannot boot with under the node's CC mode, or allocates it with a
 * warning under the `warn` policy. Checked per container request: the kubelet asks each resource
 * separately, so "all GPUs and all NVSwitches" is checked as all of each.
 */
function checkTopology(context: AllocationContext, type: 'gpu' | 'nvswitch', count: number): void {
  const check = context.topology;
  if (check === undefined) return;
  const refusal = topologyRefusal(check.rule, { name: context.resourceName, type, total: context.devices.size }, count);
  if (refusal === undefined) return;
  if (check.policy === 'warn') check.warn(refusal);
  else throw refusal;
}

function servedHealthy(id: string, context: AllocationContext): PluginDevice {
  const device = served(id, context);
  if (device.health !== 'Healthy') {
    throw refusal(
      context,
      'FAILED_PRECONDITION',
      `device ${JSON.stringify(id)} is Unhealthy (${device.reason ?? 'unknown reason'})`,
      {
        id,
      },
    );
  }
  return device;
}

function served(id: string, context: AllocationContext): PluginDevice {
  const device = context.devices.get(id);
  if (device !== undefined) return device;
  const ids = [...context.devices.keys()];
  throw new GpuccError(
    'ERR_GPUCC_UNKNOWN_DEVICE_ID',
    `invalid allocation request for ${context.resourceName}: unknown device ID ${JSON.stringify(id)} (served: ${ids.length ? ids.join(', ') : 'none'})`,
    {
      hint: 'the kubelet asked for a device this plugin does not advertise: compare with `sandbox-device-plugin list`',
      details: { resourceName: context.resourceName, id, served: ids, grpcStatus: 'NOT_FOUND' satisfies RefusalStatus },
    },
  );
}

function refusal(
  context: AllocationContext,
  grpcStatus: RefusalStatus,
  problem: string,
  details: Record<string, unknown> = {},
): GpuccError {
  return new GpuccError(
    'ERR_GPUCC_INVALID_ALLOCATION_REQUEST',
    `invalid allocation request for ${context.resourceName}: ${problem}`,
    {
      hint: 'check the device with `sandbox-device-plugin list`: is it on a VFIO driver and does its /dev/vfio node exist?',
      details: { resourceName: context.resourceName, grpcStatus, ...details },
    },
  );
}

/**
 * GetPreferredAllocation: every must-include ID, then devices from `available` that keep the set on
 * as few NUMA nodes as possible (one where it fits), at most `allocation_size` in all. A hint only:
 * the kubelet intersects it with what it has and falls back to its own choice.
 */
export function preferredAllocation(
  request: PreferredAllocationRequest,
  context: AllocationContext,
): PreferredAllocationResponse {
  return {
    container_responses: request.container_requests.map((c) => ({ deviceIDs: preferredFor(c, context) })),
  };
}

function preferredFor(request: ContainerPreferredAllocationRequest, context: AllocationContext): string[] {
  const must = [...new Set(request.must_include_deviceIDs)];
  for (const id of must) served(id, context);
  const size = request.allocation_size;
  if (size < must.length) {
    throw refusal(context, 'INVALID_ARGUMENT', `allocation size ${size} is below the ${must.length} must-include IDs`);
  }
  const known = [...context.devices.values()][0];
  if (known !== undefined) checkTopology(context, known.type, size);
  const mustSet = new Set(must);
  // Unknown or unhealthy available IDs are left out: they could only fail at Allocate.
  const candidates = [...new Set(request.available_deviceIDs)]
    .filter((id) => !mustSet.has(id) && context.devices.get(id)?.health === 'Healthy')
    .map((id) => context.devices.get(id)!);
  const picked = pickByNuma(
    candidates,
    must.map((id) => context.devices.get(id)!),
    size - must.length,
  );
  return [...must, ...picked].sort(compareDeviceIds);
}

/** Devices without NUMA information share one bucket, used after every real node. */
const NO_NODE = -1;

function nodeOf(device: PluginDevice): number {
  return device.numaNodes.length === 1 ? device.numaNodes[0]! : NO_NODE;
}

/**
 * Chooses `count` devices. When one NUMA node can supply them all, the node that already holds the
 * most must-include devices wins, then the node with the fewest free devices that still fits (so the
 * larger free sets stay whole for larger requests), then the lower node number. Otherwise nodes are
 * used largest first, so the set spans as few nodes as possible. Within a node, lower IDs first.
 */
function pickByNuma(candidates: PluginDevice[], must: PluginDevice[], count: number): string[] {
  if (count <= 0) return [];
  const byNode = new Map<number, string[]>();
  for (const device of candidates) {
    const node = nodeOf(device);
    const ids = byNode.get(node);
    if (ids) ids.push(device.id);
    else byNode.set(node, [device.id]);
  }
  for (const ids of byNode.values()) ids.sort(compareDeviceIds);
  const mustOn = (node: number) => must.filter((d) => nodeOf(d) === node).length;
  const nodes = [...byNode.keys()];
  const fitting = nodes
    .filter((node) => node !== NO_NODE && byNode.get(node)!.length >= count)
    .sort((a, b) => mustOn(b) - mustOn(a) || byNode.get(a)!.length - byNode.get(b)!.length || a - b);
  if (fitting.length > 0) return byNode.get(fitting[0]!)!.slice(0, count);
  const spread = nodes.sort(
    (a, b) =>
      Number(a === NO_NODE) - Number(b === NO_NODE) ||
      mustOn(b) - mustOn(a) ||
      byNode.get(b)!.length - byNode.get(a)!.length ||
      a - b,
  );
  return spread.flatMap((node) => byNode.get(node)!).slice(0, count);
}
