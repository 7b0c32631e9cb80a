import type { Logger } from '@gpucc/daemon';
import { GpuccError, type HostRoot, isGpuccError, messageOf } from '@gpucc/hal';
import {
  type DevicePluginOptions,
  devicePluginApi,
  GRPC_STATUS,
  GrpcCallError,
  GrpcServer,
  type ListAndWatchResponse,
  type ServerStream,
} from '@gpucc/hal/kubelet';
import {
  type AllocationContext,
  allocate,
  preferredAllocation,
  type RefusalStatus,
  type TopologyCheck,
} from './allocate.js';
import type { PluginDevice } from './inventory.js';
import type { PluginCounters } from './metrics.js';
import { listAndWatchResponse } from './wire.js';

/** What this plugin tells the kubelet: GetPreferredAllocation yes, PreStartContainer no. */
export const PLUGIN_OPTIONS: DevicePluginOptions = {
  pre_start_required: false,
  get_preferred_allocation_available: true,
};

export interface ResourceServerOptions {
  resourceName: string;
  /** Socket file name in the device-plugin dir, e.g. `sandbox-pgpu.sock`. */
  socketName: string;
  /** Host path of the socket relative to the root, for HostRoot. */
  socketRelPath: string;
  sysfs: HostRoot;
  logger: Logger;
  cdiDevices: boolean;
  counters: PluginCounters;
  /** How long calls in flight may take to finish when the server stops. */
  stopGraceMs: number;
  /** The CC topology rule in force now, asked at each allocation; absent = no check. */
  topology?: () => TopologyCheck | undefined;
}

type Stream = ServerStream<ListAndWatchResponse>;

/**
 * The DevicePlugin gRPC service of one resource on its own unix socket. It holds the resource's
 * current devices and sends the full list to every open ListAndWatch stream whenever it changes.
 */
export class ResourceServer {
  private server: GrpcServer | undefined;
  private readonly streams = new Set<Stream>();
  private devices: ReadonlyMap<string, PluginDevice> = new Map();
  private lastList = '';
  private draining = false;
  private readonly log: Logger;

  constructor(private readonly options: ResourceServerOptions) {
    this.log = options.logger.child({ resource: options.resourceName });
  }

  get resourceName(): string {
    return this.options.resourceName;
  }

  get socketName(): string {
    return this.options.socketName;
  }

  get streamCount(): number {
    return this.streams.size;
  }

  get serving(): boolean {
    return this.server !== undefined;
  }

  get currentDevices(): ReadonlyMap<string, PluginDevice> {
    return this.devices;
  }

  /** Whether our socket file is still there (the kubelet deletes it when it restarts). */
  socketPresent(): boolean {
    return this.options.sysfs.kindOf(this.options.socketRelPath) !== undefined;
  }

  /**
   * Serves on the socket: a stale file from an earlier run is removed first, but a socket another
   * live process serves (a second plugin instance) is refused, never taken over.
   */
  async start(): Promise<void> {
    if (this.server !== undefined) return;
    const { sysfs, socketRelPath } = this.options;
    const path = sysfs.resolve(socketRelPath);
    await refuseIfServed(sysfs, socketRelPath);
    await sysfs.removeFile(socketRelPath);
    const server = this.routes(new GrpcServer());
    this.draining = false;
    await server.listen(path);
    this.server = server;
    this.log.info({ event: 'plugin.serve', socket: path }, `serving ${this.resourceName} on ${path}`);
  }

  /**
   * Replaces the devices; when the list the kubelet sees changed, every open stream gets it.
   * Returns whether it changed.
   */
  update(devices: ReadonlyMap<string, PluginDevice>): boolean {
    this.devices = devices;
    const message = listAndWatchResponse(devices.values());
    const text = JSON.stringify(message);
    if (text === this.lastList) return false;
    this.lastList = text;
    for (const stream of this.streams) this.send(stream, message);
    return true;
  }

  /**
   * Stops serving. With `emptyList` every stream first gets an empty device list, so the kubelet
   * drops the resource's allocatable at once instead of waiting for the stream to end (graceful
   * shutdown). Streams are ended and the server closed, which removes the socket file.
   */
  async stop(options: { emptyList: boolean; graceMs?: number }): Promise<void> {
    const server = this.server;
    this.draining = true;
    for (const stream of this.streams) {
      if (options.emptyList) this.send(stream, { devices: [] });
      stream.end();
    }
    this.streams.clear();
    if (server === undefined) return;
    this.server = undefined;
    // Closing the listener unlinks the socket file (libuv does). No second unlink here: by now the
    // path may hold another instance's new socket, and only sockets we created are ours to delete.
    await server.close(options.graceMs ?? this.options.stopGraceMs);
    this.log.info({ event: 'plugin.stopped' }, `stopped serving ${this.resourceName}`);
  }

  private send(stream: Stream, message: ListAndWatchResponse): void {
    if (!stream.write(message)) this.streams.delete(stream);
  }

  private context(): AllocationContext {
    const topology = this.options.topology?.();
    return {
      resourceName: this.resourceName,
      devices: this.devices,
      cdiDevices: this.options.cdiDevices,
      ...(topology === undefined ? {} : { topology }),
    };
  }

  private routes(server: GrpcServer): GrpcServer {
    const { counters } = this.options;
    const api = devicePluginApi().devicePlugin;
    return server
      .unary(api.GetDevicePluginOptions, () => PLUGIN_OPTIONS)
      .serverStream(api.ListAndWatch, (_request, stream) => {
        if (this.draining) {
          stream.write({ devices: [] });
          stream.end();
          return;
        }
        this.streams.add(stream);
        stream.onClose(() => {
          if (this.streams.delete(stream)) {
            this.log.info({ event: 'stream.close', streams: this.streams.size }, 'ListAndWatch stream closed');
          }
        });
        this.log.info({ event: 'stream.open', streams: this.streams.size }, 'ListAndWatch stream opened');
        this.send(stream, listAndWatchResponse(this.devices.values()));
      })
      .unary(api.Allocate, (request) => {
        try {
          const response = allocate(request, this.context());
          counters.count(counters.allocations, this.resourceName, true);
          if (this.log.isLevelEnabled('info')) {
            const ids = request.container_requests.map((c) => c.devices_ids);
            this.log.info({ event: 'allocate', ids }, `allocated ${ids.flat().join(', ')}`);
          }
          return response;
        } catch (error) {
          counters.count(counters.allocations, this.resourceName, false);
          throw this.refuse('allocate', error);
        }
      })
      .unary(api.GetPreferredAllocation, (request) => {
        try {
          const response = preferredAllocation(request, this.context());
          counters.count(counters.preferredAllocations, this.resourceName, true);
          return response;
        } catch (error) {
          counters.count(counters.preferredAllocations, this.resourceName, false);
          throw this.refuse('preferred-allocation', error);
        }
      })
      .unary(api.PreStartContainer, (request) => {
        // Not required (pre_start_required is false); answered anyway, and only for our own IDs.
        const unknown = request.devices_ids.filter((id) => !this.devices.has(id));
        if (unknown.length === 0) return {};
        throw new GrpcCallError(
          GRPC_STATUS.NOT_FOUND,
          `ERR_GPUCC_UNKNOWN_DEVICE_ID: PreStartContainer for ${this.resourceName}: unknown device ID(s) ${unknown.join(', ')}`,
        );
      });
  }

  /** A refusal as the kubelet will log it: the gRPC status, and the code, message and hint in the text. */
  private refuse(what: string, error: unknown): GrpcCallError {
    if (!isGpuccError(error)) {
      this.log.error({ event: `${what}.failed`, err: error }, `${what} failed`);
      return new GrpcCallError(GRPC_STATUS.INTERNAL, `${what} failed: ${messageOf(error)}`);
    }
    const status = (error.details.grpcStatus as RefusalStatus | undefined) ?? 'INVALID_ARGUMENT';
    this.log.warn({ event: `${what}.refused`, err: error }, error.message);
    return new GrpcCallError(GRPC_STATUS[status], `${error.code}: ${error.message} (hint: ${error.hint})`);
  }
}

/**
 * Throws ERR_GPUCC_PLUGIN_ALREADY_SERVING when another live process accepts connections on the socket
 * (connecting tells it from a file left by a killed process): two plugins would steal each other's
 * socket in turn, and the kubelet would follow whichever registered last.
 */
export async function refuseIfServed(sysfs: HostRoot, socketRelPath: string): Promise<void> {
  if (sysfs.kindOf(socketRelPath) === undefined || !(await sysfs.socketHasListener(socketRelPath))) return;
  throw new GpuccError(
    'ERR_GPUCC_PLUGIN_ALREADY_SERVING',
    `another process serves ${sysfs.display(socketRelPath)}: a second sandbox-device-plugin on this node`,
    {
      hint: 'run one sandbox-device-plugin per node (stop the other one, or NVIDIA’s sandbox device plugin); this one does not take its socket',
      details: { socket: socketRelPath },
    },
  );
}
