import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  decodeGrpcMessage,
  encodeGrpcMessage,
  formatGrpcTimeout,
  frame,
  MessageReader,
  parseGrpcTimeout,
} from '../src/kubelet/grpc-wire.js';
import {
  type AllocateResponse,
  type ApiMethod,
  devicePluginApi,
  GRPC_STATUS,
  GrpcCallError,
  GrpcServer,
  type ListAndWatchResponse,
  unaryCall,
} from '../src/kubelet/index.js';

// hal's gRPC transport against grpc-js, an implementation independent of it, both ways (the real
// tier checks it against the kubelet's grpc-go). Each test gets its own socket directory.

const api = devicePluginApi();
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function socketPath(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gpucc-grpc-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'plugin.sock');
}

async function serve(server: GrpcServer): Promise<string> {
  const socket = socketPath();
  await server.listen(socket);
  cleanups.push(() => server.close(0));
  return socket;
}

const GRPC_HEADERS = {
  ':path': api.devicePlugin.Allocate.path,
  'content-type': 'application/grpc',
  te: 'trailers',
} satisfies http2.OutgoingHttpHeaders;

/** A raw HTTP/2 client of the socket: one POST with these headers and body, resolving with the answer's headers. */
function rawClient(socket: string) {
  const session = http2.connect('http://localhost', { createConnection: () => net.connect(socket) });
  cleanups.push(() => void session.destroy());
  return (headers: http2.OutgoingHttpHeaders, body: Buffer) =>
    new Promise<http2.IncomingHttpHeaders>((resolve) => {
      const call = session.request({ ':method': 'POST', ...headers });
      call.on('response', resolve);
      call.on('error', () => {});
      call.end(body);
    });
}

function grpcJsClient(socket: string): grpc.Client {
  const client = new grpc.Client(`unix://${socket}`, grpc.credentials.createInsecure());
  cleanups.push(() => client.close());
  return client;
}

function callGrpcJs<Req, Res>(client: grpc.Client, method: ApiMethod<Req, Res>, request: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(method.path, method.request.encode, method.response.decode, request, (error, value) =>
      error ? reject(error) : resolve(value as Res),
    );
  });
}

const ALLOCATED: AllocateResponse = {
  container_responses: [
    {
      envs: { PGPU: '23' },
      mounts: [],
      devices: [{ container_path: '/dev/vfio/23', host_path: '/dev/vfio/23', permissions: 'mrw' }],
      annotations: {},
      cdi_devices: [{ name: 'nvidia.com/pgpu=23' }],
    },
  ],
};

describe('hal’s gRPC server, called by grpc-js', () => {
  it('answers a unary call with the handler’s message, decoded by the other side exactly', async () => {
    const socket = await serve(
      new GrpcServer().unary(api.devicePlugin.Allocate, (request) => {
        expect(request.container_requests[0]!.devices_ids).toEqual(['23']);
        return ALLOCATED;
      }),
    );
    const answer = await callGrpcJs(grpcJsClient(socket), api.devicePlugin.Allocate, {
      container_requests: [{ devices_ids: ['23'] }],
    });
    expect(answer).toEqual(ALLOCATED);
  });

  it('sends a refusal’s status and text as they were thrown, non-ASCII and % included', async () => {
    const details = 'ERR_GPUCC_UNKNOWN_DEVICE_ID: device “99” is not served (100% sure)\nsecond line';
    const socket = await serve(
      new GrpcServer()
        .unary(api.devicePlugin.Allocate, () => {
          throw new GrpcCallError(GRPC_STATUS.NOT_FOUND, details);
        })
        .unary(api.devicePlugin.GetPreferredAllocation, () => {
          throw new Error('a bug');
        }),
    );
    const client = grpcJsClient(socket);
    await expect(
      callGrpcJs(client, api.devicePlugin.Allocate, { container_requests: [{ devices_ids: ['99'] }] }),
    ).rejects.toMatchObject({ code: grpc.status.NOT_FOUND, details });
    await expect(
      callGrpcJs(client, api.devicePlugin.GetPreferredAllocation, { container_requests: [] }),
    ).rejects.toMatchObject({ code: grpc.status.UNKNOWN, details: 'a bug' });
  });

  it('answers a method it does not serve with UNIMPLEMENTED, and a message over 4 MiB with RESOURCE_EXHAUSTED', async () => {
    const socket = await serve(new GrpcServer().unary(api.devicePlugin.Allocate, () => ALLOCATED));
    const client = grpcJsClient(socket);
    await expect(callGrpcJs(client, api.devicePlugin.PreStartContainer, { devices_ids: [] })).rejects.toMatchObject({
      code: grpc.status.UNIMPLEMENTED,
      details: 'unknown method /v1beta1.DevicePlugin/PreStartContainer',
    });
    const huge = { container_requests: [{ devices_ids: Array.from({ length: 5 }, () => 'x'.repeat(1024 * 1024)) }] };
    await expect(callGrpcJs(client, api.devicePlugin.Allocate, huge)).rejects.toMatchObject({
      code: grpc.status.RESOURCE_EXHAUSTED,
    });
    // The connection is still good for the next call.
    await expect(
      callGrpcJs(client, api.devicePlugin.Allocate, { container_requests: [{ devices_ids: ['23'] }] }),
    ).resolves.toEqual(ALLOCATED);
  });

  it('streams ListAndWatch: every message in order, OK at the end, and onClose when the peer cancels', async () => {
    let sendMore: ((response: ListAndWatchResponse) => void) | undefined;
    let finish: (() => void) | undefined;
    let closed = 0;
    const socket = await serve(
      new GrpcServer().serverStream(api.devicePlugin.ListAndWatch, (_request, stream) => {
        stream.onClose(() => closed++);
        stream.write({ devices: [{ ID: '23', health: 'Healthy', topology: null }] });
        sendMore = (response) => stream.write(response);
        finish = () => stream.end();
      }),
    );
    const client = grpcJsClient(socket);
    const method = api.devicePlugin.ListAndWatch;
    const call = (): grpc.ClientReadableStream<ListAndWatchResponse> =>
      client.makeServerStreamRequest(method.path, method.request.encode, method.response.decode, {});

    const first = call();
    const received: ListAndWatchResponse[] = [];
    const ended = new Promise<grpc.StatusObject>((resolve) => first.on('status', resolve));
    first.on('data', (message: ListAndWatchResponse) => {
      received.push(message);
      if (received.length === 1) sendMore!({ devices: [{ ID: '23', health: 'Unhealthy', topology: null }] });
      if (received.length === 2) finish!();
    });
    expect((await ended).code).toBe(grpc.status.OK);
    expect(received.map((m) => m.devices[0]!.health)).toEqual(['Healthy', 'Unhealthy']);
    await until(() => closed === 1);

    const second = call();
    second.on('error', () => {}); // the cancel is reported as an error on the client side
    await new Promise((resolve) => second.once('data', resolve));
    second.cancel();
    await until(() => closed === 2);
    expect(sendMore!({ devices: [] })).toBe(false); // writing to a cancelled call is refused, not thrown
  });

  it('close: the socket file goes at once; a call still running after the grace is cut', async () => {
    let started: () => void = () => {};
    const running = new Promise<void>((resolve) => {
      started = resolve;
    });
    const server = new GrpcServer().unary(api.devicePlugin.Allocate, async () => {
      started();
      return new Promise<AllocateResponse>(() => {}); // never answers
    });
    const socket = socketPath();
    await server.listen(socket);
    const call = callGrpcJs(grpcJsClient(socket), api.devicePlugin.Allocate, { container_requests: [] });
    const failed = expect(call).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    await running;
    const closing = server.close(50);
    expect(existsSync(socket)).toBe(false);
    await closing;
    await failed;
    expect(server.listening).toBe(false);
  });

  it('answers DEADLINE_EXCEEDED at the caller’s grpc-timeout, and HTTP 415 to a request that is not gRPC', async () => {
    const socket = await serve(
      new GrpcServer().unary(api.devicePlugin.Allocate, () => new Promise<AllocateResponse>(() => {})),
    );
    // A raw HTTP/2 client, which enforces no deadline of its own: the server must.
    const ask = rawClient(socket);
    const body = frame(api.devicePlugin.Allocate.request.encode({ container_requests: [] }));
    const timedOut = await ask({ ...GRPC_HEADERS, 'grpc-timeout': '50m' }, body);
    expect(timedOut).toMatchObject({ ':status': 200, 'grpc-status': String(GRPC_STATUS.DEADLINE_EXCEEDED) });
    const notGrpc = await ask({ ':path': api.devicePlugin.Allocate.path, 'content-type': 'application/json' }, body);
    expect(notGrpc[':status']).toBe(415);
  });

  it('answers a request its codec cannot read with INTERNAL, and runs no handler', async () => {
    let handled = 0;
    const socket = await serve(
      new GrpcServer().unary(api.devicePlugin.Allocate, () => {
        handled++;
        return ALLOCATED;
      }),
    );
    // Field 1 (length-delimited) claiming 200 bytes that are not there.
    const truncated = frame(Buffer.from([0x0a, 0xc8, 0x01, 0x01]));
    const answer = await rawClient(socket)(GRPC_HEADERS, truncated);
    expect(answer).toMatchObject({ ':status': 200, 'grpc-status': String(GRPC_STATUS.INTERNAL) });
    expect(decodeGrpcMessage(String(answer['grpc-message']))).toMatch(/^cannot decode the request: /);
    expect(handled).toBe(0);
  });

  it('refuses to listen on a socket path that exists, with the path in a coded error', async () => {
    const socket = await serve(new GrpcServer());
    await expect(new GrpcServer().listen(socket)).rejects.toMatchObject({
      code: 'ERR_GPUCC_PLUGIN_SOCKET_FAILED',
      message: expect.stringContaining(socket),
    });
  });
});

describe('hal’s unary client, calling grpc-js', () => {
  function grpcJsRegistration(handler: grpc.handleUnaryCall<unknown, unknown>): Promise<string> {
    const method = api.registration.Register;
    const server = new grpc.Server();
    server.addService(
      {
        Register: {
          path: method.path,
          requestStream: false,
          responseStream: false,
          requestSerialize: method.request.encode,
          requestDeserialize: method.request.decode,
          responseSerialize: method.response.encode,
          responseDeserialize: method.response.decode,
        },
      },
      { Register: handler },
    );
    const socket = socketPath();
    cleanups.push(() => void server.forceShutdown());
    return new Promise((resolve, reject) =>
      server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (error) =>
        error ? reject(error) : resolve(socket),
      ),
    );
  }

  const REQUEST = {
    version: 'v1beta1',
    endpoint: 'sandbox-pgpu.sock',
    resource_name: 'nvidia.com/pgpu',
    options: { pre_start_required: false, get_preferred_allocation_available: true },
  };

  it('registers: the server reads the request as sent, and the call resolves with its answer', async () => {
    let seen: unknown;
    const socket = await grpcJsRegistration((call, callback) => {
      seen = call.request;
      callback(null, {});
    });
    await expect(unaryCall(socket, api.registration.Register, REQUEST, { timeoutMs: 5_000 })).resolves.toEqual({});
    expect(seen).toEqual(REQUEST);
  });

  it('rejects with the server’s status and text', async () => {
    const socket = await grpcJsRegistration((_call, callback) =>
      callback({ code: grpc.status.INVALID_ARGUMENT, details: 'the ResourceName "kubernetes.io/pgpu" is invalid' }),
    );
    await expect(unaryCall(socket, api.registration.Register, REQUEST, { timeoutMs: 5_000 })).rejects.toMatchObject({
      code: GRPC_STATUS.INVALID_ARGUMENT,
      details: 'the ResourceName "kubernetes.io/pgpu" is invalid',
    });
  });

  it('DEADLINE_EXCEEDED when no answer comes in time, CANCELLED when aborted, UNAVAILABLE with no server', async () => {
    const socket = await grpcJsRegistration(() => {}); // never answers
    await expect(unaryCall(socket, api.registration.Register, REQUEST, { timeoutMs: 100 })).rejects.toMatchObject({
      code: GRPC_STATUS.DEADLINE_EXCEEDED,
    });
    const controller = new AbortController();
    const cancelled = unaryCall(socket, api.registration.Register, REQUEST, { signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    await expect(cancelled).rejects.toMatchObject({ code: GRPC_STATUS.CANCELLED });
    const missing = path.join(path.dirname(socket), 'kubelet.sock');
    await expect(unaryCall(missing, api.registration.Register, REQUEST, { timeoutMs: 1_000 })).rejects.toMatchObject({
      code: GRPC_STATUS.UNAVAILABLE,
      details: expect.stringContaining('ENOENT'),
    });
  });
});

describe('the wire format', () => {
  it('reassembles messages however HTTP/2 splits or joins the DATA frames', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1 }),
        (messages, cuts) => {
          const bytes = Buffer.concat(messages.map((m) => frame(m)));
          const reader = new MessageReader();
          const out: Buffer[] = [];
          for (let at = 0, i = 0; at < bytes.length; i++) {
            const size = cuts[i % cuts.length]!;
            out.push(...reader.push(bytes.subarray(at, at + size)));
            at += size;
          }
          expect(out.map((b) => [...b])).toEqual(messages.map((m) => [...m]));
          expect(reader.partial).toBe(false);
        },
      ),
    );
  });

  it('refuses a compressed message (never negotiated) instead of misreading it', () => {
    const compressed = frame(Buffer.from('x'));
    compressed[0] = 1;
    expect(() => new MessageReader().push(compressed)).toThrow(
      expect.objectContaining({ code: GRPC_STATUS.UNIMPLEMENTED }),
    );
  });

  it('grpc-message survives any text; grpc-timeout reads every unit and writes what fits 8 digits', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), (text) => decodeGrpcMessage(encodeGrpcMessage(text)) === text),
    );
    expect(encodeGrpcMessage('100% “ok”')).toBe('100%25 %E2%80%9Cok%E2%80%9D');
    expect([parseGrpcTimeout('10S'), parseGrpcTimeout('250m'), parseGrpcTimeout('2M'), parseGrpcTimeout('1H')]).toEqual(
      [10_000, 250, 120_000, 3_600_000],
    );
    expect([parseGrpcTimeout('5000u'), parseGrpcTimeout('123456789m'), parseGrpcTimeout('5x')]).toEqual([
      5,
      undefined,
      undefined,
    ]);
    expect([formatGrpcTimeout(10_000), formatGrpcTimeout(2.2), formatGrpcTimeout(1e9)]).toEqual([
      '10000m',
      '3m',
      '1000000S',
    ]);
  });
});

async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(done()).toBe(true);
}
