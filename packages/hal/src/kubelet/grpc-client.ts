import http2 from 'node:http2';
import net from 'node:net';
import { messageOf } from '../fs/index.js';
import { type ApiMethod, checkSocketPath } from './api.js';
import {
  decodeGrpcMessage,
  formatGrpcTimeout,
  frame,
  GRPC_CONTENT_TYPE,
  GRPC_STATUS,
  GrpcCallError,
  MessageReader,
  statusOfHttp,
} from './grpc-wire.js';

export interface UnaryCallOptions {
  /** The call's deadline: sent as `grpc-timeout`, and the call fails with DEADLINE_EXCEEDED after it. */
  timeoutMs?: number;
  /** Cancels the call (CANCELLED). */
  signal?: AbortSignal;
}

/**
 * One unary call on a unix socket, on a connection of its own that is closed after it: what the device
 * plugin needs to register with the kubelet, without a gRPC library (./grpc-server.ts says why).
 * Rejects with GrpcCallError: the peer's status, UNAVAILABLE when the socket cannot be reached,
 * DEADLINE_EXCEEDED or CANCELLED.
 */
export function unaryCall<Req, Res>(
  socketPath: string,
  method: ApiMethod<Req, Res>,
  request: Req,
  options: UnaryCallOptions = {},
): Promise<Res> {
  const path = checkSocketPath(socketPath);
  const body = frame(method.request.encode(request));
  return new Promise<Res>((resolve, reject) => {
    let settled = false;
    let session: http2.ClientHttp2Session | undefined;
    // Connected first, so that a missing or refused socket is reported as such (ENOENT,
    // ECONNREFUSED) rather than as a call that ended without a status.
    const socket = net.connect(path);
    const settle: Settle<Res> = (error, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      session?.destroy();
      socket.destroy();
      if (error) reject(error);
      else resolve(value as Res);
    };
    const onAbort = () => settle(new GrpcCallError(GRPC_STATUS.CANCELLED, 'the call was cancelled'));
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(
            () => settle(new GrpcCallError(GRPC_STATUS.DEADLINE_EXCEEDED, `no answer within ${options.timeoutMs} ms`)),
            options.timeoutMs,
          );
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const unavailable = (error: Error) => settle(new GrpcCallError(GRPC_STATUS.UNAVAILABLE, messageOf(error)));
    socket.once('error', unavailable);
    socket.once('connect', () => {
      if (settled) return;
      // grpc-go and grpc-js send `localhost` as the authority of a unix socket; so do we.
      session = http2.connect('http://localhost', { createConnection: () => socket });
      session.on('error', unavailable);
      const call = session.request({
        ':method': 'POST',
        ':path': method.path,
        'content-type': GRPC_CONTENT_TYPE,
        te: 'trailers',
        'user-agent': 'gpucc',
        ...(options.timeoutMs === undefined ? {} : { 'grpc-timeout': formatGrpcTimeout(options.timeoutMs) }),
      });
      readReply(call, method, settle);
      call.end(body);
    });
  });
}

type Settle<Res> = (error: Error | undefined, value?: Res) => void;

/** Reads the one reply of a unary call: its status (trailers, or headers alone) and its message. */
function readReply<Res>(call: http2.ClientHttp2Stream, method: ApiMethod<unknown, Res>, settle: Settle<Res>): void {
  let head: http2.IncomingHttpHeaders | undefined;
  let trailers: http2.IncomingHttpHeaders | undefined;
  const reader = new MessageReader();
  const received: Buffer[] = [];
  call.on('response', (headers) => {
    head = headers;
  });
  call.on('trailers', (headers) => {
    trailers = headers;
  });
  call.on('data', (chunk: Buffer) => {
    try {
      for (const message of reader.push(chunk)) received.push(message);
    } catch (error) {
      settle(error as Error);
    }
  });
  call.on('error', () => {}); // a reset: 'close' follows and says what it means
  call.on('close', () => {
    const status = trailers?.['grpc-status'] ?? head?.['grpc-status'];
    if (status === undefined) {
      const httpStatus = Number(head?.[':status'] ?? 0);
      if (httpStatus !== 0 && httpStatus !== 200) {
        return settle(new GrpcCallError(statusOfHttp(httpStatus), `HTTP status ${httpStatus}`));
      }
      const refused = call.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM;
      return settle(
        new GrpcCallError(
          refused ? GRPC_STATUS.UNAVAILABLE : GRPC_STATUS.INTERNAL,
          `the call ended without a status (HTTP/2 stream code ${call.rstCode ?? 0})`,
        ),
      );
    }
    const code = Number(status);
    if (code !== GRPC_STATUS.OK) {
      const message = trailers?.['grpc-message'] ?? head?.['grpc-message'];
      return settle(new GrpcCallError(code, decodeGrpcMessage(typeof message === 'string' ? message : '')));
    }
    if (received.length !== 1 || reader.partial) {
      return settle(
        new GrpcCallError(GRPC_STATUS.INTERNAL, `expected one response message, received ${received.length}`),
      );
    }
    try {
      settle(undefined, method.response.decode(received[0]!));
    } catch (error) {
      settle(new GrpcCallError(GRPC_STATUS.INTERNAL, `cannot decode the response: ${messageOf(error)}`));
    }
  });
}
