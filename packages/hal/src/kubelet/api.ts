import * as grpc from '@grpc/grpc-js';
import { GpuccError } from '../errors/index.js';
import { messageOf } from '../fs/index.js';
import { DEVICE_PLUGIN_PROTO } from './api-proto.js';
import { buildCodecs, type MessageCodec } from './codec.js';
import { MAX_UNIX_SOCKET_PATH } from './constants.js';
import { type ProtoJson, type ProtoService, protoInvalid, protoToJson } from './proto-json.js';
import type {
  AllocateRequest,
  AllocateResponse,
  DevicePluginOptions,
  Empty,
  ListAndWatchResponse,
  PreferredAllocationRequest,
  PreferredAllocationResponse,
  PreStartContainerRequest,
  PreStartContainerResponse,
  RegisterRequest,
} from './types.js';

type Method<Req, Res> = grpc.MethodDefinition<Req, Res>;

/** The two services of the API with typed methods; usable with `grpc.Server.addService`. */
export interface DevicePluginApi {
  registration: grpc.ServiceDefinition & {
    Register: Method<RegisterRequest, Empty>;
  };
  devicePlugin: grpc.ServiceDefinition & {
    GetDevicePluginOptions: Method<Empty, DevicePluginOptions>;
    ListAndWatch: Method<Empty, ListAndWatchResponse>;
    GetPreferredAllocation: Method<PreferredAllocationRequest, PreferredAllocationResponse>;
    Allocate: Method<AllocateRequest, AllocateResponse>;
    PreStartContainer: Method<PreStartContainerRequest, PreStartContainerResponse>;
  };
}

let api: DevicePluginApi | undefined;

/**
 * The service definitions, built once per process from the embedded .proto text (no file is read),
 * with our own codecs (./codec.ts) as their serializers.
 */
export function devicePluginApi(): DevicePluginApi {
  if (api === undefined) {
    const json = protoToJson(DEVICE_PLUGIN_PROTO);
    const codecs = buildCodecs(json);
    api = {
      registration: service(json, codecs, 'Registration') as DevicePluginApi['registration'],
      devicePlugin: service(json, codecs, 'DevicePlugin') as DevicePluginApi['devicePlugin'],
    };
  }
  return api;
}

function service(json: ProtoJson, codecs: Map<string, MessageCodec>, name: string): grpc.ServiceDefinition {
  const [pkg, namespace] = Object.entries(json.nested)[0] ?? [];
  const definition = namespace?.nested[name];
  if (definition === undefined || !('methods' in definition)) {
    throw protoInvalid(` has no service ${name}`, { service: name });
  }
  const codec = (type: string) => {
    const found = codecs.get(type);
    if (found === undefined)
      throw protoInvalid(`: ${name} uses the unknown message ${type}`, { service: name, message: type });
    return found;
  };
  return Object.fromEntries(
    Object.entries((definition as ProtoService).methods).map(([method, m]) => {
      const request = codec(m.requestType);
      const response = codec(m.responseType);
      return [
        method,
        {
          path: `/${pkg}.${name}/${method}`,
          requestStream: m.requestStream === true,
          responseStream: m.responseStream === true,
          requestSerialize: request.encode,
          requestDeserialize: request.decode,
          responseSerialize: response.encode,
          responseDeserialize: response.decode,
          // The name proto-loader gave: grpc-js also finds an implementation under it.
          originalName: method[0]!.toLowerCase() + method.slice(1),
        } satisfies grpc.MethodDefinition<unknown, unknown>,
      ];
    }),
  );
}

/** The grpc target for a unix socket; grpc-js then sends `localhost` as the HTTP/2 authority. */
export function unixTarget(absPath: string): string {
  return `unix://${absPath}`;
}

/** Refuses a socket path the kernel cannot bind (sun_path holds 107 bytes). */
export function checkSocketPath(absPath: string): string {
  if (!absPath.startsWith('/')) throw socketError(absPath, 'the path is not absolute');
  if (Buffer.byteLength(absPath) > MAX_UNIX_SOCKET_PATH) {
    throw socketError(absPath, `the path is longer than ${MAX_UNIX_SOCKET_PATH} bytes`);
  }
  return absPath;
}

function socketError(absPath: string, problem: string, cause?: unknown): GpuccError {
  return new GpuccError('ERR_GPUCC_PLUGIN_SOCKET_FAILED', `cannot serve gRPC on ${absPath}: ${problem}`, {
    hint: 'check that the directory exists and is writable, and that the host root is short enough for a unix socket path',
    ...(cause === undefined ? {} : { cause }),
    details: { socket: absPath },
  });
}

/** Binds a server to a unix socket; the file must not exist (remove a stale one first). */
export function bindUnix(server: grpc.Server, absPath: string): Promise<void> {
  const path = checkSocketPath(absPath);
  return new Promise((resolve, reject) => {
    server.bindAsync(unixTarget(path), grpc.ServerCredentials.createInsecure(), (error) => {
      if (error) reject(socketError(path, messageOf(error), error));
      else resolve();
    });
  });
}

/**
 * Stops a server: new calls are refused at once, calls in flight get `graceMs` to finish, then every
 * remaining call is cancelled. Resolves when the listening socket is closed (libuv unlinks its file).
 */
export function shutdownServer(server: grpc.Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    // After forceShutdown, grpc-js may never call tryShutdown's callback: a session that the peer
    // (the real kubelet's device manager, restarted) left open keeps it waiting. Found by the
    // real tier (test/real/device-plugin.test.ts); the listener is closed by then either way.
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export interface ClientSettings {
  /**
   * Overrides the HTTP/2 `:authority`. Kubelets before 1.26 sent the socket path here, which Node's
   * HTTP/2 server rejects; the fake kubelet uses it to show that failure.
   */
  authority?: string;
}

function channelOptions(settings: ClientSettings): grpc.ChannelOptions {
  return {
    ...(settings.authority === undefined ? {} : { 'grpc.default_authority': settings.authority }),
    // A fresh client per dial: no inherited reconnect backoff, and a quick first retry.
    'grpc.initial_reconnect_backoff_ms': 20,
    'grpc.max_reconnect_backoff_ms': 1_000,
  };
}

/** Shared by both clients: promise-returning unary calls with a deadline. */
abstract class UnixClient {
  protected readonly client: grpc.Client;

  constructor(socketPath: string, settings: ClientSettings = {}) {
    this.client = new grpc.Client(
      unixTarget(checkSocketPath(socketPath)),
      grpc.credentials.createInsecure(),
      channelOptions(settings),
    );
  }

  protected unary<Req, Res>(method: Method<Req, Res>, request: Req, timeoutMs: number | undefined): Promise<Res> {
    const options: grpc.CallOptions = timeoutMs === undefined ? {} : { deadline: Date.now() + timeoutMs };
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        new grpc.Metadata(),
        options,
        (error, value) => {
          if (error) reject(error);
          else resolve(value as Res);
        },
      );
    });
  }

  /** Resolves once connected; rejects at the deadline. */
  waitForReady(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.client.waitForReady(Date.now() + timeoutMs, (error) => (error ? reject(error) : resolve()));
    });
  }

  close(): void {
    this.client.close();
  }
}

/** The plugin's side of kubelet.sock. */
export class RegistrationClient extends UnixClient {
  register(request: RegisterRequest, timeoutMs: number): Promise<Empty> {
    return this.unary(devicePluginApi().registration.Register, request, timeoutMs);
  }
}

/** The kubelet's side of a plugin socket (the fake kubelet, tests, benchmarks). */
export class DevicePluginClient extends UnixClient {
  getDevicePluginOptions(timeoutMs?: number): Promise<DevicePluginOptions> {
    return this.unary(devicePluginApi().devicePlugin.GetDevicePluginOptions, {}, timeoutMs);
  }

  /** The stream the kubelet keeps open: one message per change, the full list each time. */
  listAndWatch(): grpc.ClientReadableStream<ListAndWatchResponse> {
    const method = devicePluginApi().devicePlugin.ListAndWatch;
    return this.client.makeServerStreamRequest(
      method.path,
      method.requestSerialize,
      method.responseDeserialize,
      {},
      new grpc.Metadata(),
      {},
    );
  }

  getPreferredAllocation(
    request: PreferredAllocationRequest,
    timeoutMs?: number,
  ): Promise<PreferredAllocationResponse> {
    return this.unary(devicePluginApi().devicePlugin.GetPreferredAllocation, request, timeoutMs);
  }

  allocate(request: AllocateRequest, timeoutMs?: number): Promise<AllocateResponse> {
    return this.unary(devicePluginApi().devicePlugin.Allocate, request, timeoutMs);
  }

  preStartContainer(request: PreStartContainerRequest, timeoutMs?: number): Promise<PreStartContainerResponse> {
    return this.unary(devicePluginApi().devicePlugin.PreStartContainer, request, timeoutMs);
  }
}
