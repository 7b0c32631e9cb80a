import { captureLines } from '@gpucc/testbed/fixtures';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../src/index.js';
import { createMetrics, type HealthServer, type Readiness, startHealthServer } from '../src/runtime.js';

const servers: HealthServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

async function start(readiness: () => Readiness, port = 0) {
  const metrics = createMetrics({ binary: 'kata-manager', version: '1.2.3' });
  const out = captureLines();
  const logger = createLogger({ name: 't', format: 'json', level: 'info', destination: out.sink });
  const server = await startHealthServer({
    address: { host: '127.0.0.1', port },
    readiness,
    registry: metrics.registry,
    logger,
  });
  servers.push(server);
  const get = (path: string, init?: RequestInit) => fetch(`http://127.0.0.1:${server.port}${path}`, init);
  return { server, metrics, get, out };
}

describe('health server', () => {
  it('answers /healthz 200 whatever readiness says', async () => {
    const { get, server } = await start(() => ({ ready: false, reason: 'kubelet not reachable' }));
    expect(server.port).toBeGreaterThan(0);
    const res = await get('/healthz');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('ok\n');
  });

  it('answers /readyz 503 with the reason, then 200 once ready', async () => {
    let state: Readiness = { ready: false, reason: 'no reconcile has finished yet' };
    const { get } = await start(() => state);
    const before = await get('/readyz');
    expect(before.status).toBe(503);
    expect(await before.json()).toEqual({ ready: false, reason: 'no reconcile has finished yet' });
    state = { ready: true };
    const after = await get('/readyz');
    expect(after.status).toBe(200);
    expect(await after.json()).toEqual({ ready: true });
  });

  it('answers 503 when the readiness check itself throws', async () => {
    const { get } = await start(() => {
      throw new Error('state unreadable');
    });
    const res = await get('/readyz');
    expect(res.status).toBe(503);
    expect(((await res.json()) as Readiness).reason).toContain('state unreadable');
  });

  it('serves the common metrics in the Prometheus text format', async () => {
    let ready = false;
    const { get, metrics } = await start(() => ({ ready }));
    metrics.observeReconcile(true, 0.02, new Date(1_700_000_000_000));
    const first = await get('/metrics');
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toContain('text/plain');
    const text = await first.text();
    expect(text).toContain('gpucc_reconcile_total{result="success"} 1');
    expect(text).toContain('gpucc_reconcile_total{result="failure"} 0');
    expect(text).toContain('gpucc_reconcile_duration_seconds_bucket{le="0.025"} 1');
    expect(text).toContain('gpucc_last_reconcile_success_timestamp_seconds 1700000000');
    expect(text).toContain('gpucc_build_info{version="1.2.3",binary="kata-manager"} 1');
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toMatch(/^gpucc_ready 0$/m);
    ready = true;
    expect(await (await get('/metrics')).text()).toMatch(/^gpucc_ready 1$/m);
  });

  it('answers 404 for other paths and 405 for other methods', async () => {
    const { get } = await start(() => ({ ready: true }));
    expect((await get('/')).status).toBe(404);
    expect((await get('/healthz/extra')).status).toBe(404);
    const post = await get('/healthz', { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    expect((await get('/metrics', { method: 'DELETE' })).status).toBe(405);
    expect((await get('/readyz?verbose=1')).status).toBe(200);
  });

  it('goes unready at once on markShuttingDown while staying alive', async () => {
    const { get, server } = await start(() => ({ ready: true }));
    expect((await get('/readyz')).status).toBe(200);
    server.markShuttingDown();
    const res = await get('/readyz');
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ ready: false, reason: 'shutting down' });
    expect((await get('/healthz')).status).toBe(200);
    expect(await (await get('/metrics')).text()).toMatch(/^gpucc_ready 0$/m);
  });

  it('reports a taken port as ERR_GPUCC_LISTEN_FAILED naming the address', async () => {
    const { server } = await start(() => ({ ready: true }));
    await expect(start(() => ({ ready: true }), server.port)).rejects.toMatchObject({
      code: 'ERR_GPUCC_LISTEN_FAILED',
      details: { address: `127.0.0.1:${server.port}`, errno: 'EADDRINUSE' },
    });
  });

  it('stops answering after close', async () => {
    const { get, server } = await start(() => ({ ready: true }));
    expect((await get('/healthz')).status).toBe(200);
    await server.close();
    servers.splice(servers.indexOf(server), 1);
    await expect(get('/healthz')).rejects.toThrow();
  });
});
