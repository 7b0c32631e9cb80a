import http2 from 'node:http2';
import { messageOf } from '../fs/index.js';
import { type ApiMethod, checkSocketPath, socketError } from './api.js';
import {
  encodeGrpcMessage,
  frame,
  GRPC_CONTENT_TYPE,
  GRPC_STATUS,
  GrpcCallError,
  MessageReader,
  parseGrpcTimeout,
} from './grpc-wire.js';

/**
 * A gRPC server on a unix socket for the device plugin API, on Node's own HTTP/2 (no gRPC library):
 * unary and server-streaming methods, what the kubelet calls. grpc-js did the same job, but loading it
 * took about 20 ms of the plugin's start and several MB of its memory (issue 17, `pnpm bench`). The
 * rules followed are in docs/facts/kubelet-device-plugin.md#grpc-on-the-wire.
 *
 * A handler answers a message or throws: a GrpcCallError is sent as its status, anything else as
 * UNKNOWN with its message (what the kubelet logs).
 */

export type UnaryHandler<Req, Res> = (request: Req) => Res | Promise<Res>;

/** The response side of a server-streaming call. */
export interface ServerStream<Res> {
  /** Sends one message; false when the call is already over. */
  write(message: Res): boolean;
  /** Ends the call with status OK. */
  end(): void;
  /** Whether the call is over (ended by us, cancelled by the peer, or its connection gone). */
  readonly closed: boolean;
  /** Called once when the call is over, whoever ended it. */
  onClose(listener: () => void): void;
}

export type StreamHandler<Req, Res> = (request: Req, stream: ServerStream<Res>) => void;

interface Route {
  method: ApiMethod<unknown, unknown>;
  unary?: UnaryHandler<unknown, unknown>;
  stream?: StreamHandler<unknown, unknown>;
}

const OK_HEADERS = { ':status': 200, 'content-type': GRPC_CONTENT_TYPE };

export class GrpcServer {
  private readonly routes = new Map<string, Route>();
  private http: http2.Http2Server | undefined;
  private readonly sessions = new Set<http2.ServerHttp2Session>();

  unary<Req, Res>(method: ApiMethod<Req, Res>, handler: UnaryHandler<Req, Res>): this {
    if (method.responseStream || method.requestStream) throw new Error(`${method.path} is not a unary method`);
    this.routes.set(method.path, { method, unary: handler } as Route);
    return this;
  }

  serverStream<Req, Res>(method: ApiMethod<Req, Res>, handler: StreamHandler<Req, Res>): this {
    if (!method.responseStream || method.requestStream) {
      throw new Error(`${method.path} is not a server-streaming method`);
    }
    this.routes.set(method.path, { method, stream: handler } as Route);
    return this;
  }

  get listening(): boolean {
    return this.http !== undefined;
  }

  /** Listens on a unix socket whose file must not exist (remove a stale one first). */
  listen(absPath: string): Promise<void> {
    const path = checkSocketPath(absPath);
    const http = http2.createServer();
    http.on('session', (session) => {
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
      // A peer that vanishes mid-call: the calls are over, nothing to report beyond their close.
      session.on('error', () => {});
    });
    http.on('stream', (stream, headers) => this.dispatch(stream, headers));
    return new Promise((resolve, reject) => {
      const failed = (error: Error) => reject(socketError(path, messageOf(error), error));
      http.once('error', failed);
      http.listen(path, () => {
        http.off('error', failed);
        http.on('error', () => {});
        this.http = http;
        resolve();
      });
    });
  }

  /**
   * Stops: the socket stops accepting at once (closing the listener unlinks its file), connections are
   * told to go away (GOAWAY), calls in flight get `graceMs` to finish, then every connection is cut.
   */
  close(graceMs: number): Promise<void> {
    const http = this.http;
    this.http = undefined;
    if (http === undefined) return Promise.resolve();
    return new Promise((resolve) => {
      const cut = () => {
        for (const session of this.sessions) session.destroy();
        resolve();
      };
      const timer = setTimeout(cut, graceMs);
      http.close(() => {
        clearTimeout(timer);
        resolve();
      });
      for (const session of this.sessions) session.close();
    });
  }

  private dispatch(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    // A reset by the peer surfaces as 'error'; the call is over and 'close' follows.
    stream.on('error', () => {});
    if (headers[':method'] !== 'POST' || !headers['content-type']?.startsWith(GRPC_CONTENT_TYPE)) {
      // Not a gRPC call at all: HTTP's own answers (405 Method Not Allowed, 415 Unsupported Media Type).
      stream.respond({ ':status': headers[':method'] !== 'POST' ? 405 : 415 }, { endStream: true });
      return;
    }
    const route = this.routes.get(headers[':path'] ?? '');
    const encoding = headers['grpc-encoding'];
    if (route === undefined) {
      endWithStatus(stream, GRPC_STATUS.UNIMPLEMENTED, `unknown method ${headers[':path']}`);
    } else if (encoding !== undefined && encoding !== 'identity') {
      endWithStatus(stream, GRPC_STATUS.UNIMPLEMENTED, `grpc-encoding ${encoding} is not supported`);
    } else {
      receive(stream, headers, route);
    }
  }
}

/** Reads the call's one request message, then runs its handler. */
function receive(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, route: Route): void {
  const timeoutMs = route.unary ? parseGrpcTimeout(headers['grpc-timeout']) : undefined;
  const deadline =
    timeoutMs === undefined
      ? undefined
      : setTimeout(() => endWithStatus(stream, GRPC_STATUS.DEADLINE_EXCEEDED, 'deadline exceeded'), timeoutMs);
  stream.once('close', () => clearTimeout(deadline));
  const reader = new MessageReader();
  const received: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => {
    try {
      for (const message of reader.push(chunk)) received.push(message);
    } catch (error) {
      fail(stream, error);
    }
  });
  stream.once('end', () => {
    if (stream.headersSent || stream.closed) return;
    if (received.length !== 1 || reader.partial) {
      endWithStatus(stream, GRPC_STATUS.INTERNAL, `expected one request message, received ${received.length}`);
      return;
    }
    let request: unknown;
    try {
      request = route.method.request.decode(received[0]!);
    } catch (error) {
      endWithStatus(stream, GRPC_STATUS.INTERNAL, `cannot decode the request: ${messageOf(error)}`);
      return;
    }
    if (route.unary) answer(stream, route, request);
    else route.stream!(request, new ResponseStream(stream, route.method));
  });
}

/** Runs a unary handler and sends its answer; a handler that answers at once costs no promise. */
function answer(stream: http2.ServerHttp2Stream, route: Route, request: unknown): void {
  let result: unknown;
  try {
    result = route.unary!(request);
  } catch (error) {
    fail(stream, error);
    return;
  }
  if (result instanceof Promise)
    result.then(
      (value) => send(stream, route, value),
      (error) => fail(stream, error),
    );
  else send(stream, route, result);
}

const WAIT_FOR_TRAILERS = { waitForTrailers: true };
const OK_TRAILERS = { 'grpc-status': '0' };

function send(stream: http2.ServerHttp2Stream, route: Route, response: unknown): void {
  let bytes: Buffer;
  try {
    bytes = route.method.response.encode(response);
  } catch (error) {
    fail(stream, error);
    return;
  }
  if (stream.headersSent || stream.closed || stream.destroyed) return;
  stream.respond(OK_HEADERS, WAIT_FOR_TRAILERS);
  stream.once('wantTrailers', () => stream.sendTrailers(OK_TRAILERS));
  stream.end(frame(bytes));
}

function fail(stream: http2.ServerHttp2Stream, error: unknown): void {
  if (error instanceof GrpcCallError) endWithStatus(stream, error.code, error.details);
  else endWithStatus(stream, GRPC_STATUS.UNKNOWN, messageOf(error));
}

/** Ends a call that sent nothing yet with a status alone ("Trailers-Only": one HEADERS frame). */
function endWithStatus(stream: http2.ServerHttp2Stream, code: number, message: string): void {
  if (stream.headersSent || stream.closed || stream.destroyed) return;
  stream.respond(
    { ...OK_HEADERS, 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(message) },
    { endStream: true },
  );
}

class ResponseStream<Res> implements ServerStream<Res> {
  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    private readonly method: ApiMethod<unknown, Res>,
  ) {
    stream.respond(OK_HEADERS, WAIT_FOR_TRAILERS);
    stream.once('wantTrailers', () => stream.sendTrailers(OK_TRAILERS));
  }

  get closed(): boolean {
    return this.stream.closed || this.stream.destroyed || this.stream.writableEnded;
  }

  write(message: Res): boolean {
    if (this.closed) return false;
    this.stream.write(frame(this.method.response.encode(message)));
    return true;
  }

  end(): void {
    if (!this.closed) this.stream.end();
  }

  onClose(listener: () => void): void {
    if (this.stream.closed || this.stream.destroyed) queueMicrotask(listener);
    else this.stream.once('close', listener);
  }
}
