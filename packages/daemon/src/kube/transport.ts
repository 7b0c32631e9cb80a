import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Authenticator, RequestAuth } from './auth.js';
import type { KubeConfig } from './config.js';

export interface KubeRequest {
  method: 'GET' | 'PATCH' | 'POST';
  path: string;
  query?: Readonly<Record<string, string | number | boolean | undefined>>;
  body?: unknown;
  /** Of the body; `application/json` by default. */
  contentType?: string;
  signal?: AbortSignal;
}

/** What a watch line says: its type and object (docs/facts/kubernetes-api-client.md#watch-stream). */
export type WatchEventHandler = (type: string, object: unknown) => void;

export interface KubeTransport {
  /** One request and its JSON answer; any status but 2xx rejects with an error carrying `statusCode` and `body`. */
  request<T>(request: KubeRequest): Promise<T>;
  /**
   * A watch: resolves once the server answered 200 with a handle that ends it, then hands over each
   * event and calls `done` once, with null when the server ended the stream. A refusal rejects;
   * `signal` ends a watch whose answer has not come yet.
   */
  watch(
    path: string,
    query: KubeRequest['query'],
    onEvent: WatchEventHandler,
    done: (error: unknown) => void,
    signal?: AbortSignal,
  ): Promise<{ abort(): void }>;
}

/** A refused request as errors.ts reads it: the HTTP status and the server's Status body. */
export class KubeApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly body: unknown,
  ) {
    super(`HTTP ${statusCode}`);
    this.name = 'KubeApiError';
  }
}

const USER_AGENT = `gpucc (node ${process.version})`;
const MAX_BODY_BYTES = 16 * 1024 * 1024;
// A watch stream carries nothing until something changes, up to the server's timeoutSeconds; after
// that much more silence the connection is taken for dead (a peer gone without a FIN).
const WATCH_IDLE_GRACE_MS = 60_000;

/** HTTP/1.1 to the API server on node:https (node:http for an http:// server), keep-alive, one agent per client certificate. */
export function createTransport(config: KubeConfig, auth: Authenticator): KubeTransport {
  const base = new URL(config.server);
  const secure = base.protocol === 'https:';
  let agent: { for?: Buffer; agent: http.Agent } | undefined;

  const agentFor = (credentials: RequestAuth): http.Agent => {
    if (agent && agent.for === credentials.cert) return agent.agent;
    agent?.agent.destroy();
    const created = secure
      ? new https.Agent({
          keepAlive: true,
          ...(config.ca ? { ca: config.ca } : {}),
          ...(credentials.cert ? { cert: credentials.cert, key: credentials.key } : {}),
          rejectUnauthorized: !config.insecureSkipTlsVerify,
          ...(config.tlsServerName ? { servername: config.tlsServerName } : {}),
        })
      : new http.Agent({ keepAlive: true });
    agent = { ...(credentials.cert ? { for: credentials.cert } : {}), agent: created };
    return created;
  };

  const urlOf = (path: string, query: KubeRequest['query'] = {}) => {
    const url = new URL(`${base.pathname.replace(/\/$/, '')}${path}`, base);
    for (const [key, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(key, String(value));
    return url;
  };

  /** Sends one request and resolves with the response head; the body is the caller's to read. */
  const send = async (request: KubeRequest, signal?: AbortSignal): Promise<IncomingMessage> => {
    const credentials = await auth.current();
    signal?.throwIfAborted();
    const payload = request.body === undefined ? undefined : Buffer.from(JSON.stringify(request.body));
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': USER_AGENT };
    if (credentials.authorization) headers.authorization = credentials.authorization;
    if (payload) {
      headers['content-type'] = request.contentType ?? 'application/json';
      headers['content-length'] = String(payload.length);
    }
    const url = urlOf(request.path, request.query);
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = (secure ? https : http).request(url, {
        method: request.method,
        headers,
        agent: agentFor(credentials),
        ...(signal ? { signal } : {}),
      });
      req.once('response', resolve);
      req.once('error', reject);
      req.end(payload);
    });
    if (response.statusCode === 401) auth.rejected();
    return response;
  };

  const readBody = (response: IncomingMessage): Promise<string> =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) response.destroy(new Error(`answer larger than ${MAX_BODY_BYTES} bytes`));
        else chunks.push(chunk);
      });
      response.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      response.once('error', reject);
      response.once('aborted', () => reject(new Error('the connection closed before the answer was complete')));
    });

  const refusal = async (response: IncomingMessage): Promise<KubeApiError> => {
    const text = await readBody(response).catch(() => '');
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not a Status: the text itself
    }
    return new KubeApiError(response.statusCode ?? 0, body);
  };

  return {
    async request<T>(request: KubeRequest): Promise<T> {
      const response = await send(request, request.signal);
      const status = response.statusCode ?? 0;
      if (status < 200 || status > 299) throw await refusal(response);
      const text = await readBody(response);
      return (text === '' ? undefined : JSON.parse(text)) as T;
    },

    async watch(path, query, onEvent, done, signal) {
      const controller = new AbortController();
      const stop = () => controller.abort();
      signal?.addEventListener('abort', stop, { once: true });
      const idleMs = Number(query?.timeoutSeconds ?? 0) * 1000 + WATCH_IDLE_GRACE_MS;
      // Until the answer comes, the same limit: a server that accepts and never answers is retried.
      const silent = setTimeout(
        () => controller.abort(new Error(`no answer to the watch within ${idleMs} ms`)),
        idleMs,
      );
      let response: IncomingMessage;
      try {
        response = await send({ method: 'GET', path, query: { ...query, watch: true } }, controller.signal);
      } catch (error) {
        throw controller.signal.reason instanceof Error ? controller.signal.reason : error;
      } finally {
        clearTimeout(silent);
        signal?.removeEventListener('abort', stop);
      }
      if (response.statusCode !== 200) throw await refusal(response);
      response.socket.setKeepAlive(true, 30_000);
      let ended = false;
      const end = (error: unknown) => {
        if (ended) return;
        ended = true;
        clearTimeout(idle);
        done(error);
      };
      let idle = setTimeout(() => response.destroy(new Error(`no data on the watch for ${idleMs} ms`)), idleMs);
      let pending = '';
      const take = (line: string) => {
        if (line.trim() === '') return;
        const event = JSON.parse(line) as { type?: unknown; object?: unknown };
        onEvent(String(event.type), event.object);
      };
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        idle.refresh();
        // One event per line; a chunk may end inside one, which waits for the rest.
        const lines = (pending + chunk).split('\n');
        pending = lines.pop() ?? '';
        try {
          for (const line of lines) take(line);
        } catch (error) {
          response.destroy();
          end(new Error(`the watch stream is not JSON lines: ${(error as Error).message}`));
        }
      });
      response.once('end', () => {
        try {
          take(pending);
        } catch {
          // a line cut by the end of the connection: the next watch resumes before it
        }
        end(null);
      });
      response.once('error', (error) => end(controller.signal.aborted ? null : error));
      response.once('aborted', () => end(controller.signal.aborted ? null : new Error('the watch connection was cut')));
      idle = idle.unref();
      return {
        abort() {
          controller.abort();
          response.destroy();
          end(null);
        },
      };
    },
  };
}
