import type {
  AllocateRequest,
  AllocateResponse,
  DevicePluginOptions,
  ListAndWatchResponse,
  PreferredAllocationRequest,
  PreferredAllocationResponse,
  PreStartContainerRequest,
  PreStartContainerResponse,
} from '@gpucc/hal/kubelet';
import { type ApiMethod, checkSocketPath, devicePluginApi, GrpcCallError } from '@gpucc/hal/kubelet';
import * as grpc from '@grpc/grpc-js';

/**
 * The kubelet's side of the device plugin API on grpc-js, for the fake kubelet, tests and benchmarks.
 * The plugin speaks through hal's own HTTP/2 transport; its peers here use an implementation
 * independent of it (as the real kubelet's grpc-go is), so every test of the plugin through the fake
 * kubelet also checks that the two interoperate.
 */

/** One API service as grpc-js serves it, with hal's codecs as its serializers. */
export function grpcJsService(methods: Record<string, ApiMethod<unknown, unknown>>): grpc.ServiceDefinition {
  return Object.fromEntries(
    Object.entries(methods).map(([name, m]) => [
      name,
      {
        path: m.path,
        requestStream: m.requestStream,
        responseStream: m.responseStream,
        requestSerialize: m.request.encode,
        requestDeserialize: m.request.decode,
        responseSerialize: m.response.encode,
        responseDeserialize: m.response.decode,
      } satisfies grpc.MethodDefinition<unknown, unknown>,
    ]),
  );
}

/** Binds a grpc-js server to a unix socket; the file must not exist. */
export function bindUnix(server: grpc.Server, absPath: string): Promise<void> {
  const path = checkSocketPath(absPath);
  return new Promise((resolve, reject) => {
    server.bindAsync(`unix://${path}`, grpc.ServerCredentials.createInsecure(), (error) =>
      error ? reject(error) : resolve(),
    );
  });
}

/** Stops a grpc-js server: calls in flight get `graceMs`, then every remaining one is cancelled. */
export function shutdownServer(server: grpc.Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    // After forceShutdown grpc-js may never call tryShutdown's callback (a session the peer left open).
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

/**
 * The kubelet's side of a plugin socket (the fake kubelet, tests, benchmarks): promise-returning unary
 * calls with a deadline and the ListAndWatch stream, on a grpc-js channel to a unix socket.
 */
export class DevicePluginClient {
  private readonly client: grpc.Client;

  constructor(socketPath: string, settings: ClientSettings = {}) {
    this.client = new grpc.Client(`unix://${checkSocketPath(socketPath)}`, grpc.credentials.createInsecure(), {
      ...(settings.authority === undefined ? {} : { 'grpc.default_authority': settings.authority }),
      // A fresh client per dial: no inherited reconnect backoff, and a quick first retry.
      'grpc.initial_reconnect_backoff_ms': 20,
      'grpc.max_reconnect_backoff_ms': 1_000,
    });
  }

  private unary<Req, Res>(method: ApiMethod<Req, Res>, request: Req, timeoutMs: number | undefined): Promise<Res> {
    const options: grpc.CallOptions = timeoutMs === undefined ? {} : { deadline: Date.now() + timeoutMs };
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        method.path,
        method.request.encode,
        method.response.decode,
        request,
        new grpc.Metadata(),
        options,
        (error, value) => (error ? reject(new GrpcCallError(error.code, error.details)) : resolve(value as Res)),
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

  getDevicePluginOptions(timeoutMs?: number): Promise<DevicePluginOptions> {
    return this.unary(devicePluginApi().devicePlugin.GetDevicePluginOptions, {}, timeoutMs);
  }

  /** The stream the kubelet keeps open: one message per change, the full list each time. */
  listAndWatch(): grpc.ClientReadableStream<ListAndWatchResponse> {
    const method = devicePluginApi().devicePlugin.ListAndWatch;
    return this.client.makeServerStreamRequest(
      method.path,
      method.request.encode,
      method.response.decode,
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
