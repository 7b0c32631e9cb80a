import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { localFs } from '@gpucc/hal';
import { kubeconfigYaml } from './kubeconfig.js';
import { type Json, type JsonObject, metaOf, statusObject } from './objects.js';
import { jsonPatch, mergePatch, PatchError } from './patch.js';
import { KUBECONFIG_FILE, SERVER_FILE, SIM_TOKEN, STORE_FILE } from './paths.js';
import {
  compactHistory,
  createEvent,
  type EnsureOptions,
  ensureStore,
  listEvents,
  readStore,
  type StoreData,
  updateNode,
} from './store.js';

/**
 * A fake Kubernetes API server for one simulated node, on node:http, speaking what
 * Kubernetes clients (gpucc's node client, kubectl) send: GET/LIST/WATCH nodes (fieldSelector metadata.name, resourceVersion,
 * bookmarks, timeoutSeconds, 410 Gone as a watch ERROR event once the history is compacted), PATCH
 * (merge, strategic merge as merge, JSON patch), and events (core/v1 and events.k8s.io/v1). State
 * lives in the node's store (store.ts); changes other processes make there reach the watchers.
 */

export interface ApiServerOptions extends EnsureOptions {
  root: string;
  host?: string;
  /** 0 (default): any free port. */
  port?: number;
  /** Bookmark interval for watches that allow them (default 10 s). */
  bookmarkMs?: number;
  /** How often the store is checked for changes by other processes, besides fs.watch (default 100 ms). */
  pollMs?: number;
  /** Called once per request (the CLI prints them). */
  onRequest?: (entry: RequestRecord) => void;
}

export interface RequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType?: string;
  /** The parsed body of PATCH and POST requests. */
  body?: Json;
  status: number;
}

export interface ApiServer {
  url: string;
  port: number;
  nodeName: string;
  kubeconfigPath: string;
  /** Every request answered so far (watches when they end), for tests. */
  readonly requests: RequestRecord[];
  /** Drops the history: a watch resuming from an older version then gets 410 Gone. */
  compact(): void;
  /** Ends every open watch stream (a dropped connection). */
  dropWatches(): void;
  /** Open watch streams now. */
  watchCount(): number;
  close(): Promise<void>;
}

interface Watcher {
  res: ServerResponse;
  name: string | undefined;
  /** The last version this watcher has been sent. */
  rv: number;
  timers: NodeJS.Timeout[];
}

const json = (res: ServerResponse, status: number, body: Json) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify(body)}\n`);
};

export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const root = path.resolve(options.root);
  const initial = ensureStore(root, options);
  const nodeName = metaOf(initial.node).name;
  const bookmarkMs = options.bookmarkMs ?? 10_000;
  const requests: RequestRecord[] = [];
  const watchers = new Set<Watcher>();
  let dispatchedRv = initial.resourceVersion;

  const record = (entry: RequestRecord) => {
    requests.push(entry);
    options.onRequest?.(entry);
  };

  /** Sends the store's new node changes to every watcher; watchers that missed some get 410. */
  function sync(): void {
    let data: StoreData;
    try {
      data = readStore(root);
    } catch {
      return; // mid-replace or removed: the next poll sees it
    }
    if (data.resourceVersion <= dispatchedRv) return;
    for (const w of watchers) {
      if (w.rv < data.compactedRv) {
        gone(w, data);
        continue;
      }
      for (const entry of data.history) {
        if (entry.rv > w.rv && matches(entry.object, w.name)) send(w, entry.type, entry.object);
      }
      w.rv = Math.max(w.rv, data.resourceVersion);
    }
    dispatchedRv = data.resourceVersion;
  }

  function send(w: Watcher, type: string, object: Json): void {
    w.res.write(`${JSON.stringify({ type, object })}\n`);
  }

  function endWatch(w: Watcher): void {
    for (const t of w.timers) clearTimeout(t);
    watchers.delete(w);
    w.res.end();
  }

  function gone(w: Watcher, data: StoreData): void {
    send(w, 'ERROR', statusObject(410, 'Expired', `too old resource version: ${w.rv} (${data.compactedRv})`));
    endWatch(w);
  }

  const stopPolling = (() => {
    const file = path.join(root, STORE_FILE);
    let stamp = localFs.fileStamp(file);
    const check = () => {
      const now = localFs.fileStamp(file);
      if (now !== stamp) {
        stamp = now;
        sync();
      }
    };
    const timer = setInterval(check, options.pollMs ?? 100);
    timer.unref();
    const unwatch = localFs.watchDir(path.dirname(file), (name) => {
      if (name === null || name === path.basename(file)) check();
    });
    return () => {
      clearInterval(timer);
      unwatch();
    };
  })();

  function authorized(req: IncomingMessage): boolean {
    return req.headers.authorization === `Bearer ${SIM_TOKEN}`;
  }

  async function readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  function nameSelector(
    query: URLSearchParams,
  ): { ok: true; name: string | undefined } | { ok: false; message: string } {
    const selector = query.get('fieldSelector');
    if (!selector) return { ok: true, name: undefined };
    let name: string | undefined;
    for (const term of selector.split(',')) {
      const match = /^([^=!]+)(==|=)(.*)$/.exec(term.trim());
      if (match?.[1] !== 'metadata.name') {
        return {
          ok: false,
          message: `"${term}" is not a known field selector: only "metadata.name=NAME" is supported`,
        };
      }
      name = match[3];
    }
    return { ok: true, name };
  }

  function matches(object: JsonObject, name: string | undefined): boolean {
    return name === undefined || metaOf(object).name === name;
  }

  function watch(req: IncomingMessage, res: ServerResponse, query: URLSearchParams, name: string | undefined): void {
    const data = readStore(root);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const rvParam = query.get('resourceVersion');
    const from = rvParam === null || rvParam === '' || rvParam === '0' ? undefined : Number(rvParam);
    const w: Watcher = { res, name, rv: data.resourceVersion, timers: [] };
    if (from === undefined || !Number.isFinite(from)) {
      if (matches(data.node, name)) send(w, 'ADDED', data.node); // "start at most recent": the state first
    } else if (from < data.compactedRv) {
      w.rv = from;
      gone(w, data);
      return;
    } else {
      for (const entry of data.history)
        if (entry.rv > from && matches(entry.object, name)) send(w, entry.type, entry.object);
    }
    watchers.add(w);
    const timeout = Number(query.get('timeoutSeconds') ?? '0');
    if (timeout > 0) w.timers.push(setTimeout(() => endWatch(w), timeout * 1000));
    if (query.get('allowWatchBookmarks') === 'true') {
      const bookmark = () => {
        send(w, 'BOOKMARK', { kind: 'Node', apiVersion: 'v1', metadata: { resourceVersion: String(w.rv) } });
        w.timers.push(setTimeout(bookmark, bookmarkMs));
      };
      w.timers.push(setTimeout(bookmark, bookmarkMs));
    }
    req.on('close', () => {
      for (const t of w.timers) clearTimeout(t);
      watchers.delete(w);
    });
  }

  async function handle(req: IncomingMessage, res: ServerResponse, entry: RequestRecord): Promise<number> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const method = req.method ?? 'GET';
    const query = url.searchParams;
    const parts = url.pathname.split('/').filter(Boolean);
    const fail = (code: number, reason: string, message: string) => {
      json(res, code, statusObject(code, reason, message));
      return code;
    };
    if (!authorized(req)) return fail(401, 'Unauthorized', 'Unauthorized');

    if (url.pathname === '/version' && method === 'GET') {
      json(res, 200, { major: '1', minor: '33', gitVersion: 'v1.33.0-gpucc-sim', platform: 'linux/amd64' });
      return 200;
    }

    // /api/v1/nodes[/NAME]
    if (parts[0] === 'api' && parts[1] === 'v1' && parts[2] === 'nodes' && parts.length <= 4) {
      const name = parts[3];
      if (name === undefined) {
        if (method !== 'GET') return fail(405, 'MethodNotAllowed', `${method} is not supported on the node list`);
        const selector = nameSelector(query);
        if (!selector.ok) return fail(400, 'BadRequest', selector.message);
        if (query.get('watch') === 'true' || query.get('watch') === '1') {
          watch(req, res, query, selector.name);
          return 200;
        }
        const data = readStore(root);
        json(res, 200, {
          kind: 'NodeList',
          apiVersion: 'v1',
          metadata: { resourceVersion: String(data.resourceVersion) },
          items: matches(data.node, selector.name) ? [data.node] : [],
        });
        return 200;
      }
      const data = readStore(root);
      if (name !== metaOf(data.node).name) return fail(404, 'NotFound', `nodes "${name}" not found`);
      if (method === 'GET') {
        json(res, 200, data.node);
        return 200;
      }
      if (method === 'PATCH') return patchNode(req, res, entry, fail);
      return fail(405, 'MethodNotAllowed', `${method} is not supported on nodes here`);
    }

    // events: /api/v1/events, /api/v1/namespaces/NS/events, /apis/events.k8s.io/v1/namespaces/NS/events
    const coreEvents = parts[0] === 'api' && parts[1] === 'v1';
    const newEvents = parts[0] === 'apis' && parts[1] === 'events.k8s.io' && parts[2] === 'v1';
    if (coreEvents || newEvents) {
      const rest = parts.slice(coreEvents ? 2 : 3);
      const namespace = rest[0] === 'namespaces' ? rest[1] : undefined;
      const isEvents =
        namespace === undefined ? rest[0] === 'events' && rest.length === 1 : rest[2] === 'events' && rest.length === 3;
      if (isEvents) {
        if (method === 'GET') {
          const items = listEvents(root, namespace);
          json(res, 200, {
            kind: 'EventList',
            apiVersion: coreEvents ? 'v1' : 'events.k8s.io/v1',
            metadata: { resourceVersion: String(readStore(root).resourceVersion) },
            items,
          });
          return 200;
        }
        if (method === 'POST' && namespace !== undefined) {
          const body = await parseBody(req, entry, fail);
          if (typeof body === 'number') return body;
          try {
            const event = createEvent(root, namespace, { ...body, apiVersion: coreEvents ? 'v1' : 'events.k8s.io/v1' });
            json(res, 201, event);
            return 201;
          } catch (error) {
            if (error instanceof PatchError) return fail(error.code, reasonFor(error.code), error.message);
            throw error;
          }
        }
        return fail(405, 'MethodNotAllowed', `${method} is not supported on events here`);
      }
    }
    return fail(404, 'NotFound', `the server could not find the requested resource (${method} ${url.pathname})`);
  }

  async function parseBody(
    req: IncomingMessage,
    entry: RequestRecord,
    fail: (code: number, reason: string, message: string) => number,
  ): Promise<JsonObject | number> {
    const text = await readBody(req);
    try {
      const parsed = JSON.parse(text) as Json;
      entry.body = parsed;
      if (typeof parsed !== 'object' || parsed === null)
        return fail(400, 'BadRequest', 'the body must be a JSON object');
      return parsed as JsonObject;
    } catch {
      return fail(400, 'BadRequest', `the body is not JSON: ${text.slice(0, 100)}`);
    }
  }

  async function patchNode(
    req: IncomingMessage,
    res: ServerResponse,
    entry: RequestRecord,
    fail: (code: number, reason: string, message: string) => number,
  ): Promise<number> {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
    const text = await readBody(req);
    let patch: Json;
    try {
      patch = JSON.parse(text) as Json;
      entry.body = patch;
    } catch {
      return fail(400, 'BadRequest', `the patch is not JSON: ${text.slice(0, 100)}`);
    }
    let apply: (node: JsonObject) => Json;
    if (type === 'application/merge-patch+json' || type === 'application/strategic-merge-patch+json') {
      // Strategic merge on a Node's labels and annotations (maps) is a plain merge.
      apply = (node) => mergePatch(node, patch);
    } else if (type === 'application/json-patch+json') {
      apply = (node) => jsonPatch(node, patch);
    } else {
      return fail(415, 'UnsupportedMediaType', `the patch content type ${JSON.stringify(type)} is not supported`);
    }
    const expected = (patch as { metadata?: { resourceVersion?: unknown } } | null)?.metadata?.resourceVersion;
    try {
      const { node } = updateNode(root, apply, typeof expected === 'string' ? { expectedRv: expected } : {});
      sync();
      json(res, 200, node);
      return 200;
    } catch (error) {
      if (error instanceof PatchError) return fail(error.code, reasonFor(error.code), error.message);
      throw error;
    }
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const entry: RequestRecord = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      ...(req.headers['content-type'] ? { contentType: req.headers['content-type'] } : {}),
      status: 0,
    };
    handle(req, res, entry)
      .then((status) => {
        entry.status = status;
        record(entry);
      })
      .catch((error: unknown) => {
        entry.status = 500;
        record(entry);
        if (!res.headersSent)
          json(res, 500, statusObject(500, 'InternalError', String((error as Error)?.message ?? error)));
        else res.destroy();
      });
  });

  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: options.port ?? 0 }, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const kubeconfigPath = path.join(root, KUBECONFIG_FILE);
  localFs.writeFileSync(`${kubeconfigPath}.tmp`, kubeconfigYaml(url), 0o600);
  localFs.renameSync(`${kubeconfigPath}.tmp`, kubeconfigPath);
  localFs.writeFileSync(
    path.join(root, SERVER_FILE),
    `${JSON.stringify({ url, pid: process.pid, node: nodeName, startedAt: new Date().toISOString() })}\n`,
  );

  return {
    url,
    port,
    nodeName,
    kubeconfigPath,
    requests,
    compact() {
      compactHistory(root);
      dispatchedRv = readStore(root).resourceVersion;
    },
    dropWatches() {
      for (const w of [...watchers]) {
        for (const t of w.timers) clearTimeout(t);
        watchers.delete(w);
        w.res.destroy();
      }
    },
    watchCount: () => watchers.size,
    close: () =>
      new Promise<void>((resolve) => {
        stopPolling();
        for (const w of [...watchers]) endWatch(w);
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function reasonFor(code: number): string {
  return code === 409 ? 'Conflict' : code === 422 ? 'Invalid' : code === 400 ? 'BadRequest' : 'InternalError';
}
