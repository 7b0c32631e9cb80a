import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errnoOf, GpuccError, messageOf } from '@gpucc/hal';
import { formatListenAddress, type ListenAddress } from '../config/listen-address.js';
import type { Logger } from '../log/logger.js';
import type { Readiness } from '../loop/readiness.js';
import { READY_GAUGE } from '../metrics/daemon-metrics.js';
import { Gauge } from '../metrics/instruments.js';
import type { CollectFailure, Registry } from '../metrics/registry.js';

export interface HealthServerOptions {
  address: ListenAddress;
  /** Asked at every /readyz and /metrics request; must be cheap and must not throw (it is guarded). */
  readiness: () => Readiness;
  registry: Registry;
  logger: Logger;
}

export interface HealthServer {
  port: number;
  /** From now on /readyz answers 503 "shutting down" whatever readiness says (graceful shutdown). */
  markShuttingDown(): void;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

const json = (res: ServerResponse, status: number, value: unknown) =>
  send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(value)}\n`);

/**
 * /healthz, /readyz and /metrics. /healthz answers 200 as long as the event loop runs and asks
 * nothing else (a kubelet restarting us because a dependency is down would not help).
 * gpucc_ready is set from the same answer as /readyz, at each request to either.
 */
export function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const { registry, logger } = options;
  let shuttingDown = false;
  const readyGauge = registry.get(READY_GAUGE);
  const failing = new Set<string>();

  function readiness(): { ready: boolean; reason?: string } {
    let answer: { ready: boolean; reason?: string };
    if (shuttingDown) answer = { ready: false, reason: 'shutting down' };
    else {
      try {
        answer = options.readiness();
      } catch (error) {
        answer = { ready: false, reason: `readiness check failed: ${messageOf(error)}` };
      }
    }
    if (readyGauge instanceof Gauge) readyGauge.set(answer.ready ? 1 : 0);
    return answer;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const known = path === '/healthz' || path === '/readyz' || path === '/metrics';
    if (!known) return json(res, 404, { error: 'not found', paths: ['/healthz', '/readyz', '/metrics'] });
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n', { allow: 'GET, HEAD' });
    }
    if (path === '/healthz') return send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
    if (path === '/readyz') {
      const answer = readiness();
      return json(res, answer.ready ? 200 : 503, answer.ready ? { ready: true } : answer);
    }
    readiness();
    const { text, failures } = await registry.expose();
    reportFailures(failures);
    send(res, 200, registry.contentType, text);
  }

  /** Logs a family when it starts failing and when it collects again, not at every scrape. */
  function reportFailures(failures: CollectFailure[]): void {
    const now = new Set(failures.map((f) => f.name));
    for (const { name, error } of failures) {
      if (failing.has(name)) continue;
      logger.error(
        { event: 'metrics.collect-failed', metric: name, err: error },
        `metric ${name} left out of /metrics: its collector failed: ${messageOf(error)}`,
      );
    }
    for (const name of failing) {
      if (!now.has(name))
        logger.info({ event: 'metrics.collect-recovered', metric: name }, `metric ${name} collects again`);
    }
    failing.clear();
    for (const name of now) failing.add(name);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      logger.error({ event: 'http.error', path: req.url, err: error }, 'health server request failed');
      if (!res.headersSent) json(res, 500, { error: messageOf(error) });
      else res.destroy();
    });
  });

  const { host, port } = options.address;
  const shown = formatListenAddress(options.address);
  return new Promise((resolve, reject) => {
    server.once('error', (error) => {
      reject(
        new GpuccError('ERR_GPUCC_LISTEN_FAILED', `cannot listen on ${shown}: ${messageOf(error)}`, {
          hint: 'choose a free host:port with --metrics-address (GPUCC_METRICS_ADDRESS)',
          cause: error,
          details: { address: shown, ...(errnoOf(error) ? { errno: errnoOf(error) } : {}) },
        }),
      );
    });
    server.listen({ host, port }, () => {
      const actual = (server.address() as AddressInfo).port;
      logger.info({ event: 'http.listen', address: shown, port: actual }, `serving /healthz /readyz /metrics`);
      resolve({
        port: actual,
        markShuttingDown() {
          if (!shuttingDown) logger.info({ event: 'http.shutting-down' }, '/readyz now answers 503');
          shuttingDown = true;
        },
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections(); // keep-alive probes must not hold the exit
          }),
      });
    });
  });
}
