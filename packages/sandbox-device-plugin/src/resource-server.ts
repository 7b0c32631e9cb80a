import type { Logger } from '@gpucc/daemon';
import { GpuccError, type HostRoot, isGpuccError, messageOf } from '@gpucc/hal';
import {
  bindUnix,
  type DevicePluginOptions,
  devicePluginApi,
  type Empty,
  type ListAndWatchResponse,
  shutdownServer,
} from '@gpucc/hal/kubelet';
import * as grpc from '@grpc/grpc-js';
import { type AllocationContext, allocate, preferredAllocation, type RefusalStatus } from './allocate.js';
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
}

type Stream = grpc.ServerWritableStream<Empty, ListAndWatchResponse>;

/**
 * The DevicePlugin gRPC service of one resource on its own unix socket. It holds the resource's
 * current devices and sends the full list to every open ListAndWatch stream whenever it changes.
 */
export class ResourceServer {
  private server: grpc.Server | undefined;
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
    // No channelz: nothing reads it, and its per-call bookkeeping costs Allocate latency.
    const server = new grpc.Server({ 'grpc.enable_channelz': 0 });
    server.addService(devicePluginApi().devicePlugin, this.handlers());
    this.draining = false;
    await bindUnix(server, path);
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
  async stop(options: { emptyList: boolean }): Promise<void> {
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
    await shutdownServer(server, this.options.stopGraceMs);
    this.log.info({ event: 'plugin.stopped' }, `stopped serving ${this.resourceName}`);
  }

  private send(stream: Stream, message: ListAndWatchResponse): void {
    try {
      stream.write(message);
    } catch (error) {
      this.log.warn({ event: 'stream.write-failed', err: error }, 'could not write to a ListAndWatch stream');
      this.streams.delete(stream);
    }
  }

  private context(): AllocationContext {
    return { resourceName: this.resourceName, devices: this.devices, cdiDevices: this.options.cdiDevices };
  }

  private handlers(): grpc.UntypedServiceImplementation {
    const { counters } = this.options;
    return {
      GetDevicePluginOptions: (_call: grpc.ServerUnaryCall<Empty, unknown>, callback: grpc.sendUnaryData<unknown>) =>
        callback(null, PLUGIN_OPTIONS),

      ListAndWatch: (stream: Stream) => {
        if (this.draining) {
          stream.write({ devices: [] });
          stream.end();
          return;
        }
        this.streams.add(stream);
        const forget = () => {
          if (this.streams.delete(stream)) {
            this.log.info({ event: 'stream.close', streams: this.streams.size }, 'ListAndWatch stream closed');
          }
        };
        stream.on('cancelled', forget);
        stream.on('close', forget);
        stream.on('error', forget);
        this.log.info({ event: 'stream.open', streams: this.streams.size }, 'ListAndWatch stream opened');
        this.send(stream, listAndWatchResponse(this.devices.values()));
      },

      Allocate: (
        call: grpc.ServerUnaryCall<Parameters<typeof allocate>[0], unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) => {
        try {
          const response = allocate(call.request, this.context());
          counters.count(counters.allocations, this.resourceName, true);
          if (this.log.isLevelEnabled('info')) {
            const ids = call.request.container_requests.map((c) => c.devices_ids);
            this.log.info({ event: 'allocate', ids }, `allocated ${ids.flat().join(', ')}`);
          }
          callback(null, response);
        } catch (error) {
          counters.count(counters.allocations, this.resourceName, false);
          callback(this.refuse('allocate', error));
        }
      },

      GetPreferredAllocation: (
        call: grpc.ServerUnaryCall<Parameters<typeof preferredAllocation>[0], unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) => {
        try {
          const response = preferredAllocation(call.request, this.context());
          counters.count(counters.preferredAllocations, this.resourceName, true);
          callback(null, response);
        } catch (error) {
          counters.count(counters.preferredAllocations, this.resourceName, false);
          callback(this.refuse('preferred-allocation', error));
        }
      },

      PreStartContainer: (
        call: grpc.ServerUnaryCall<{ devices_ids: string[] }, unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) => {
        // Not required (pre_start_required is false); answered anyway, and only for our own IDs.
        const unknown = call.request.devices_ids.filter((id) => !this.devices.has(id));
        if (unknown.length === 0) return callback(null, {});
        callback({
          code: grpc.status.NOT_FOUND,
          details: `ERR_GPUCC_UNKNOWN_DEVICE_ID: PreStartContainer for ${this.resourceName}: unknown device ID(s) ${unknown.join(', ')}`,
        });
      },
    };
  }

  /** A refusal as the kubelet will log it: the gRPC status, and the code, message and hint in the text. */
  private refuse(what: string, error: unknown): Partial<grpc.StatusObject> {
    if (!isGpuccError(error)) {
      this.log.error({ event: `${what}.failed`, err: error }, `${what} failed`);
      return { code: grpc.status.INTERNAL, details: `${what} failed: ${messageOf(error)}` };
    }
    const status = (error.details.grpcStatus as RefusalStatus | undefined) ?? 'INVALID_ARGUMENT';
    this.log.warn({ event: `${what}.refused`, err: error }, error.message);
    return { code: grpc.status[status], details: `${error.code}: ${error.message} (hint: ${error.hint})` };
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
