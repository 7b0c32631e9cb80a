import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { compareDeviceIds, GpuccError, localFs, messageOf } from '@gpucc/hal';
import {
  type ContainerAllocateResponse,
  DEVICE_PLUGIN_API_VERSION,
  DEVICE_PLUGIN_DIR,
  type Device,
  type DevicePluginOptions,
  devicePluginApi,
  type Empty,
  HEALTHY,
  KUBELET_CHECKPOINT,
  KUBELET_DIAL_TIMEOUT_MS,
  KUBELET_SOCKET,
  type ListAndWatchResponse,
  type RegisterRequest,
  UNHEALTHY,
} from '@gpucc/hal/kubelet';
import * as grpc from '@grpc/grpc-js';
import { SIM_DIR } from '../node/paths.js';
import { bindUnix, DevicePluginClient, grpcJsService, shutdownServer } from './grpc-js.js';
import { isExtendedResourceName } from './resource-name.js';

/** Files of the fake kubelet beside the simulated tree. */
export const KUBELET_STATUS_FILE = `${SIM_DIR}/kubelet-status.json`;
export const KUBELET_CONTROL_SOCKET = `${SIM_DIR}/kubelet-control.sock`;

/** The kubelet's endpointStopGracePeriod: how long a resource outlives its ended stream. */
export const ENDPOINT_GRACE_MS = 5 * 60_000;

const MAX_REJECTED = 50;

export interface FakeKubeletOptions {
  /** The host root: a simulated node, or any directory laid out like a host. */
  root: string;
  /** After a ListAndWatch stream ends, the resource is dropped after this long (kubelet: 5 min). */
  endpointGraceMs?: number;
  /**
   * Dial plugins with the socket path as HTTP/2 :authority, as kubelets before 1.26 did: Node's
   * HTTP/2 server refuses it, so registration fails as documented
   * (docs/facts/kubelet-device-plugin.md#the-authority-pitfall).
   */
  legacyAuthority?: boolean;
  /** Keep `.gpucc-sim/kubelet-status.json` up to date (the CLI does). */
  statusFile?: boolean;
  /** Called for every event, as one human line (the CLI prints them). */
  log?: (line: string) => void;
}

export interface KubeletResourceState {
  resourceName: string;
  /** Socket file name of the current endpoint; null before the first registration. */
  endpoint: string | null;
  /** Register accepted since the last (re)start of the kubelet. */
  registered: boolean;
  /** The ListAndWatch stream of the current endpoint is open. */
  streaming: boolean;
  /** Register calls accepted for this resource since the kubelet process started. */
  registrations: number;
  /** ListAndWatch messages received. */
  updates: number;
  lastRegisteredAt: string | null;
  options: DevicePluginOptions | null;
  /** healthy + unhealthy */
  capacity: number;
  /** healthy only (exactly `Healthy`) */
  allocatable: number;
  devices: Device[];
}

export interface KubeletAllocation {
  /** The pod and container it was for (the fake admits one made-up pod per allocation). */
  podUid: string;
  containerName: string;
  resourceName: string;
  deviceIds: string[];
  /** What GetPreferredAllocation suggested (absent when the plugin does not offer it). */
  preferred?: string[];
  response: ContainerAllocateResponse;
  at: string;
}

export interface KubeletRejection {
  resourceName: string;
  endpoint: string;
  error: string;
  at: string;
}

export interface KubeletState {
  root: string;
  socket: string;
  listening: boolean;
  restarts: number;
  legacyAuthority: boolean;
  resources: Record<string, KubeletResourceState>;
  allocations: KubeletAllocation[];
  /** Refused Register calls (the last 50), newest last. */
  rejected: KubeletRejection[];
}

interface Endpoint {
  generation: number;
  socketName: string;
  client: DevicePluginClient;
  stream: grpc.ClientReadableStream<ListAndWatchResponse>;
}

interface ResourceRecord {
  resourceName: string;
  endpoint: Endpoint | undefined;
  registered: boolean;
  streaming: boolean;
  registrations: number;
  updates: number;
  lastRegisteredAt: string | null;
  options: DevicePluginOptions | null;
  devices: Device[];
  dropTimer: NodeJS.Timeout | undefined;
  lastSocketName: string | null;
}

/**
 * A kubelet's device manager, for tests and `gpucc-sim kubelet`: it serves Registration on
 * `kubelet.sock`, checks version and resource name with the kubelet's rules and messages, dials
 * each plugin back (authority `localhost`), reads its options, keeps ListAndWatch open and replaces
 * the resource's devices on every message, marks them unhealthy when the stream ends, allocates as
 * the kubelet does, and restarts as the kubelet does (streams closed, sockets wiped, listen again).
 */
export class FakeKubelet {
  readonly root: string;
  readonly dir: string;
  readonly socket: string;
  private server: grpc.Server | undefined;
  private readonly resources = new Map<string, ResourceRecord>();
  private allocations: KubeletAllocation[] = [];
  private readonly rejected: KubeletRejection[] = [];
  private restarts = 0;
  private generation = 0;
  private readonly listeners = new Set<() => void>();
  private statusScheduled = false;

  constructor(private readonly options: FakeKubeletOptions) {
    this.root = path.resolve(options.root);
    this.dir = path.join(this.root, DEVICE_PLUGIN_DIR);
    this.socket = path.join(this.dir, KUBELET_SOCKET);
  }

  /** Wipes the plugin sockets (as a starting kubelet does), loads the checkpoint and listens. */
  async start(): Promise<void> {
    localFs.makeDir(this.dir, 0o755);
    this.allocations = this.readCheckpoint();
    await this.wipeSockets();
    await this.listen();
  }

  /** Stops listening and closes every plugin connection. */
  async stop(): Promise<void> {
    for (const record of this.resources.values()) {
      clearTimeout(record.dropTimer);
      this.disconnect(record);
    }
    await this.closeServer();
    this.changed();
    if (this.options.statusFile) this.writeStatus();
  }

  /**
   * A kubelet restart: streams closed, every socket in the directory deleted (the checkpoint kept),
   * then, after `delayMs`, kubelet.sock served again. Resources keep their name and allocations but
   * have no devices until their plugin registers again.
   */
  async restart(options: { delayMs?: number } = {}): Promise<void> {
    this.restarts++;
    this.say(`restarting${options.delayMs ? ` (listening again in ${options.delayMs} ms)` : ''}`);
    for (const record of this.resources.values()) {
      clearTimeout(record.dropTimer);
      record.dropTimer = undefined;
      this.disconnect(record);
      record.registered = false;
      record.devices = [];
    }
    await this.closeServer();
    await this.wipeSockets();
    this.changed();
    if (options.delayMs) await new Promise((resolve) => setTimeout(resolve, options.delayMs));
    await this.listen();
  }

  state(): KubeletState {
    const resources: Record<string, KubeletResourceState> = {};
    for (const name of [...this.resources.keys()].sort()) {
      const r = this.resources.get(name)!;
      const allocatable = r.devices.filter((d) => d.health === HEALTHY).length;
      resources[name] = {
        resourceName: name,
        endpoint: r.endpoint?.socketName ?? r.lastSocketName,
        registered: r.registered,
        streaming: r.streaming,
        registrations: r.registrations,
        updates: r.updates,
        lastRegisteredAt: r.lastRegisteredAt,
        options: r.options,
        capacity: r.devices.length,
        allocatable,
        devices: r.devices.map((d) => ({ ...d })),
      };
    }
    return {
      root: this.root,
      socket: this.socket,
      listening: this.server !== undefined,
      restarts: this.restarts,
      legacyAuthority: this.options.legacyAuthority === true,
      resources,
      allocations: this.allocations.map((a) => ({ ...a })),
      rejected: [...this.rejected],
    };
  }

  /** Calls `listener` after every change of state; returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves with the state once `predicate` holds (checked now and after every change); rejects at the deadline. */
  waitFor(predicate: (state: KubeletState) => boolean, timeoutMs = 10_000): Promise<KubeletState> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const state = this.state();
        if (!predicate(state)) return false;
        finish();
        resolve(state);
        return true;
      };
      const timer = setTimeout(() => {
        finish();
        reject(
          new Error(`fake kubelet: condition not reached in ${timeoutMs} ms; state: ${JSON.stringify(this.state())}`),
        );
      }, timeoutMs);
      const unsubscribe = this.onChange(() => void check());
      const finish = () => {
        clearTimeout(timer);
        unsubscribe();
      };
      check();
    });
  }

  /** The socket path of a resource's current endpoint (to talk to the plugin directly in tests). */
  endpointPath(resourceName: string): string | undefined {
    const socketName = this.resources.get(resourceName)?.endpoint?.socketName;
    return socketName === undefined ? undefined : path.join(this.dir, socketName);
  }

  /**
   * Allocates `count` devices of a resource for one container, as the kubelet does at pod
   * admission: free healthy devices, GetPreferredAllocation when offered (its answer checked against
   * what is free), then Allocate with one container request whose IDs are in no particular order.
   * The allocation is kept, and checkpointed, until the kubelet process ends.
   */
  async allocate(resourceName: string, count: number): Promise<KubeletAllocation> {
    const record = this.resources.get(resourceName);
    const endpoint = record?.endpoint;
    if (record === undefined || endpoint === undefined || !record.registered) {
      throw refused(`cannot allocate unregistered device ${resourceName}`, { resourceName });
    }
    if (!Number.isInteger(count) || count < 1) throw refused(`cannot allocate ${count} devices`, { resourceName });
    const taken = new Set(this.allocations.filter((a) => a.resourceName === resourceName).flatMap((a) => a.deviceIds));
    const free = record.devices
      .filter((d) => d.health === HEALTHY && !taken.has(d.ID))
      .map((d) => d.ID)
      .sort(compareDeviceIds);
    if (free.length < count) {
      throw refused(
        `requested number of devices unavailable for ${resourceName}. Requested: ${count}, Available: ${free.length}`,
        { resourceName, count, available: free.length },
      );
    }
    let preferred: string[] | undefined;
    let chosen = free.slice(0, count);
    if (record.options?.get_preferred_allocation_available) {
      const answer = await this.call(resourceName, 'GetPreferredAllocation', () =>
        endpoint.client.getPreferredAllocation({
          container_requests: [
            { available_deviceIDs: [...free].reverse(), must_include_deviceIDs: [], allocation_size: count },
          ],
        }),
      );
      preferred = answer.container_responses[0]?.deviceIDs ?? [];
      const usable = preferred.filter((id) => free.includes(id));
      // A hint only: the kubelet takes it when it is a valid choice and falls back otherwise.
      if (usable.length === count && new Set(usable).size === count) chosen = usable;
    }
    const response = await this.call(resourceName, 'Allocate', () =>
      endpoint.client.allocate({ container_requests: [{ devices_ids: [...chosen].reverse() }] }),
    );
    const first = response.container_responses[0];
    if (first === undefined) throw refused('no containers return in allocation response', { resourceName });
    const allocation: KubeletAllocation = {
      podUid: randomUUID(),
      containerName: 'workload',
      resourceName,
      deviceIds: [...chosen].sort(compareDeviceIds),
      ...(preferred === undefined ? {} : { preferred }),
      response: first,
      at: new Date().toISOString(),
    };
    this.allocations.push(allocation);
    this.writeCheckpoint();
    this.say(`allocated ${resourceName} ${allocation.deviceIds.join(',')}`);
    this.changed();
    return allocation;
  }

  /**
   * Gives back the devices of a resource, as the kubelet does when their pod is deleted: all of the
   * resource's allocations, or only the one holding `deviceIds`. Returns the allocations released.
   */
  release(resourceName: string, deviceIds?: readonly string[]): KubeletAllocation[] {
    const wanted = deviceIds === undefined ? undefined : new Set(deviceIds);
    const released = this.allocations.filter(
      (a) => a.resourceName === resourceName && (wanted === undefined || a.deviceIds.some((id) => wanted.has(id))),
    );
    if (released.length === 0) return [];
    this.allocations = this.allocations.filter((a) => !released.includes(a));
    this.writeCheckpoint();
    this.say(`released ${resourceName} ${released.flatMap((a) => a.deviceIds).join(',')}`);
    this.changed();
    return released;
  }

  // ---- Registration --------------------------------------------------------------------------------

  private async listen(): Promise<void> {
    const server = new grpc.Server();
    server.addService(grpcJsService(devicePluginApi().registration), {
      Register: (call: grpc.ServerUnaryCall<RegisterRequest, Empty>, callback: grpc.sendUnaryData<Empty>) => {
        this.register(call.request).then(
          () => callback(null, {}),
          (error: unknown) => callback({ code: grpc.status.UNKNOWN, details: messageOf(error) }),
        );
      },
    });
    await localFs.removeFile(this.socket);
    await bindUnix(server, this.socket);
    this.server = server;
    this.say(`listening on ${this.socket}`);
    this.changed();
  }

  private async closeServer(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await shutdownServer(server, 1_000);
  }

  /** The kubelet's Register handler: validate, dial back, read options, open ListAndWatch, then answer. */
  private async register(request: RegisterRequest): Promise<void> {
    const name = request.resource_name;
    try {
      if (request.version !== DEVICE_PLUGIN_API_VERSION) {
        throw new Error(
          `requested API version ${JSON.stringify(request.version)} is not supported by kubelet. Supported versions are ["${DEVICE_PLUGIN_API_VERSION}"]`,
        );
      }
      if (!isExtendedResourceName(name)) throw new Error(`the ResourceName ${JSON.stringify(name)} is invalid`);
      const socketPath = path.join(this.dir, request.endpoint);
      if (request.endpoint === '' || path.dirname(socketPath) !== this.dir) {
        throw new Error(`invalid endpoint ${JSON.stringify(request.endpoint)}: a socket file name in ${this.dir}`);
      }
      const endpoint = await this.dial(request.endpoint, socketPath);
      this.connect(name, endpoint, endpoint.options);
    } catch (error) {
      this.rejected.push({ resourceName: name, endpoint: request.endpoint, error: messageOf(error), at: now() });
      if (this.rejected.length > MAX_REJECTED) this.rejected.shift(); // a plugin retrying forever must not grow us
      this.say(`refused registration of ${name}: ${messageOf(error)}`);
      this.changed();
      throw error;
    }
  }

  private async dial(socketName: string, socketPath: string): Promise<Endpoint & { options: DevicePluginOptions }> {
    const client = new DevicePluginClient(socketPath, this.options.legacyAuthority ? { authority: socketPath } : {});
    try {
      await client.waitForReady(KUBELET_DIAL_TIMEOUT_MS);
      const options = await client.getDevicePluginOptions(KUBELET_DIAL_TIMEOUT_MS);
      return { generation: ++this.generation, socketName, client, stream: client.listAndWatch(), options };
    } catch (error) {
      client.close();
      throw new Error(`failed to dial device plugin: ${messageOf(error)}`);
    }
  }

  /**
   * A newer endpoint replaces the old one; events of the old stream no longer count (endpoints keyed by generation).
   */
  private connect(resourceName: string, endpoint: Endpoint, options: DevicePluginOptions): void {
    let record = this.resources.get(resourceName);
    if (record === undefined) {
      record = {
        resourceName,
        endpoint: undefined,
        registered: false,
        streaming: false,
        registrations: 0,
        updates: 0,
        lastRegisteredAt: null,
        options: null,
        devices: [],
        dropTimer: undefined,
        lastSocketName: null,
      };
      this.resources.set(resourceName, record);
    }
    this.disconnect(record);
    clearTimeout(record.dropTimer);
    record.dropTimer = undefined;
    record.endpoint = endpoint;
    record.lastSocketName = endpoint.socketName;
    record.registered = true;
    record.streaming = true;
    record.registrations++;
    record.lastRegisteredAt = now();
    record.options = options;
    const current = () => record.endpoint?.generation === endpoint.generation;
    endpoint.stream.on('data', (message: ListAndWatchResponse) => {
      if (!current()) return;
      // The full list, every time: devices left out are gone.
      record.devices = message.devices.map((d) => ({ ID: d.ID, health: d.health, topology: d.topology ?? null }));
      record.updates++;
      const healthy = record.devices.filter((d) => d.health === HEALTHY).length;
      this.say(`${resourceName}: ${record.devices.length} devices, ${healthy} healthy`);
      this.changed();
    });
    const ended = (why: string) => {
      if (!current() || !record.streaming) return;
      record.streaming = false;
      record.devices = record.devices.map((d) => ({ ...d, health: UNHEALTHY }));
      this.say(`${resourceName}: ListAndWatch ended (${why}); devices unhealthy`);
      const graceMs = this.options.endpointGraceMs ?? ENDPOINT_GRACE_MS;
      record.dropTimer = setTimeout(() => {
        if (!current()) return;
        record.devices = [];
        this.say(`${resourceName}: endpoint gone for ${graceMs} ms; resource dropped`);
        this.changed();
      }, graceMs);
      record.dropTimer.unref();
      this.changed();
    };
    endpoint.stream.on('error', (error: Error) => ended(messageOf(error)));
    endpoint.stream.on('end', () => ended('stream ended'));
    this.say(`registered ${resourceName} (${endpoint.socketName})`);
    this.changed();
  }

  private disconnect(record: ResourceRecord): void {
    const endpoint = record.endpoint;
    if (endpoint === undefined) return;
    record.endpoint = undefined;
    record.streaming = false;
    endpoint.stream.cancel();
    endpoint.client.close();
  }

  private async call<T>(resourceName: string, method: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      const details = (error as { details?: unknown }).details;
      throw refused(
        `${method} for ${resourceName} failed: ${typeof details === 'string' ? details : messageOf(error)}`,
        {
          resourceName,
          method,
          grpcCode: (error as { code?: unknown }).code,
        },
      );
    }
  }

  // ---- files -----------------------------------------------------------------------------------

  /**
   * Deletes every socket in the directory (ours, plugins', stale ones); regular files such as the checkpoint stay.
   */
  private async wipeSockets(): Promise<void> {
    for (const name of localFs.listDir(this.dir)) {
      const abs = path.join(this.dir, name);
      if (localFs.kindOf(abs) === 'other') await localFs.removeFile(abs);
    }
  }

  private readCheckpoint(): KubeletAllocation[] {
    try {
      const data = JSON.parse(localFs.readText(path.join(this.dir, KUBELET_CHECKPOINT))) as {
        GpuccSimAllocations?: KubeletAllocation[];
      };
      return Array.isArray(data.GpuccSimAllocations) ? data.GpuccSimAllocations : [];
    } catch {
      return []; // none yet, or another kubelet's format: start empty as a kubelet with a bad checkpoint does
    }
  }

  private writeCheckpoint(): void {
    const abs = path.join(this.dir, KUBELET_CHECKPOINT);
    const temp = `${abs}.${process.pid}.tmp`;
    localFs.writeFileSync(temp, `${JSON.stringify(this.checkpoint())}\n`, 0o600);
    localFs.renameSync(temp, abs);
  }

  /**
   * The kubelet's own format (docs/facts/real-hosts.md#the-kubelet-checkpoint), so that readers of
   * a real one read this one; `Checksum` is 0 (only Go computes the real one) and what the fake needs
   * to restore its allocations rides in a key the kubelet ignores.
   */
  private checkpoint(): unknown {
    const registered: Record<string, string[]> = {};
    for (const [name, record] of this.resources) registered[name] = record.devices.map((d) => d.ID);
    return {
      Data: {
        PodDeviceEntries: this.allocations.map((a) => ({
          PodUID: a.podUid,
          ContainerName: a.containerName,
          ResourceName: a.resourceName,
          DeviceIDs: { '-1': a.deviceIds },
          AllocResp: Buffer.from(JSON.stringify(a.response)).toString('base64'),
        })),
        RegisteredDevices: registered,
      },
      Checksum: 0,
      GpuccSimAllocations: this.allocations,
    };
  }

  private writeStatus(): void {
    const abs = path.join(this.root, KUBELET_STATUS_FILE);
    localFs.makeDir(path.dirname(abs));
    const temp = `${abs}.${process.pid}.tmp`;
    localFs.writeFileSync(temp, `${JSON.stringify({ ...this.state(), pid: process.pid }, null, 1)}\n`);
    localFs.renameSync(temp, abs);
  }

  private changed(): void {
    for (const listener of [...this.listeners]) listener();
    if (this.options.statusFile && !this.statusScheduled) {
      this.statusScheduled = true;
      setImmediate(() => {
        this.statusScheduled = false;
        this.writeStatus();
      });
    }
  }

  private say(line: string): void {
    this.options.log?.(line);
  }
}

function refused(message: string, details: Record<string, unknown>): GpuccError {
  return new GpuccError('ERR_GPUCC_SIM_KUBELET_REFUSED', message, {
    hint: 'check `gpucc-sim kubelet-status DIR` and the device plugin’s log',
    details,
  });
}

function now(): string {
  return new Date().toISOString();
}
