import { createNodeClient, type KubeNode, kubeConfigFrom, type NodeUpdate } from '@gpucc/daemon/kube';
import { isGpuccError, type PciAddress } from '@gpucc/hal';
import { bindAll, silentLogger } from '@gpucc/testbed/fixtures';
import { simNode } from '@gpucc/testbed/vitest';
import { HttpResponse, http } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CcBackend, DeviceModes, QueryAnswer } from '../src/backend/backend.js';
import { DEFAULT_CAPABILITY } from '../src/capability.js';
import { createReconciler } from '../src/reconcile.js';

// msw covers what the fake API server does not do on purpose: refusals, server errors, dropped watches.
const BASE = 'http://k8s.test';
const NODES = `${BASE}/api/v1/nodes`;
const server = setupServer();
beforeAll(() => server.listen({ onUnhandledRequest: 'error' }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

function client() {
  const config = kubeConfigFrom(
    {
      clusters: [{ name: 'c', cluster: { server: BASE } }],
      users: [{ name: 'u', user: { token: 't' } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'x',
    },
    '/test/kubeconfig',
  );
  return createNodeClient({ nodeName: 'n1', config, logger: silentLogger(), component: 'cc-manager' });
}

const status = (code: number, reason: string, message: string) =>
  HttpResponse.json({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message }, { status: code });
const nodeObject = (resourceVersion: string, labels: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name: 'n1', uid: 'uid-1', resourceVersion, labels },
});
const lines = (events: unknown[], end = true) =>
  new HttpResponse(
    new ReadableStream({
      start(controller) {
        for (const e of events) controller.enqueue(new TextEncoder().encode(`${JSON.stringify(e)}\n`));
        if (end) controller.close();
      },
    }),
    { headers: { 'content-type': 'application/json' } },
  );

async function failure(promise: Promise<unknown>) {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code: string; hint: string };
  }
  throw new Error('expected a failure');
}

describe('Kubernetes error edges (msw)', () => {
  it.each([
    [401, 'Unauthorized', 'Unauthorized', 'ERR_GPUCC_KUBE_UNAUTHORIZED', /token/],
    [
      403,
      'Forbidden',
      'nodes "n1" is forbidden: User "system:serviceaccount:gpu-operator:cc" cannot get resource "nodes"',
      'ERR_GPUCC_KUBE_FORBIDDEN',
      /get, watch and patch on nodes/,
    ],
    [404, 'NotFound', 'nodes "n1" not found', 'ERR_GPUCC_KUBE_NOT_FOUND', /NODE_NAME/],
    [500, 'InternalError', 'etcdserver: request timed out', 'ERR_GPUCC_KUBE_REQUEST_FAILED', /retried with backoff/],
  ])('GET answered %i: %s with the server’s words and a hint', async (code, reason, message, errorCode, hint) => {
    server.use(http.get(`${NODES}/n1`, () => status(code, reason, message)));
    const error = await failure(client().getNode());
    expect(isGpuccError(error)).toBe(true);
    expect(error.code).toBe(errorCode);
    if (code !== 401) expect(error.message).toContain(message);
    expect(error.hint).toMatch(hint);
  });

  it('a PATCH answered 500 fails with the server’s words; an unreachable server says so', async () => {
    server.use(http.patch(`${NODES}/n1`, () => status(500, 'InternalError', 'etcdserver: leader changed')));
    const error = await failure(client().patchLabels({ 'nvidia.com/cc.mode.state': 'on' }));
    expect(error.code).toBe('ERR_GPUCC_KUBE_REQUEST_FAILED');
    expect(error.message).toBe('patch labels of node n1: HTTP 500: etcdserver: leader changed');
    server.use(http.get(`${NODES}/n1`, () => HttpResponse.error()));
    const down = await failure(client().getNode());
    expect(down.code).toBe('ERR_GPUCC_KUBE_REQUEST_FAILED');
    expect(down.hint).toMatch(/cannot be reached/);
  });

  it('a dropped watch resumes from the last version; 410 relists; a 500 is retried after the backoff', async () => {
    const watches: string[] = [];
    let gets = 0;
    server.use(
      http.get(`${NODES}/n1`, () => {
        gets++;
        return HttpResponse.json(
          gets === 1
            ? nodeObject('5', { 'nvidia.com/cc.mode': 'on' })
            : nodeObject('9', { 'nvidia.com/cc.mode': 'devtools' }),
        );
      }),
      http.get(NODES, ({ request }) => {
        const url = new URL(request.url);
        expect(url.searchParams.get('watch')).toBe('true');
        expect(url.searchParams.get('fieldSelector')).toBe('metadata.name=n1');
        const rv = url.searchParams.get('resourceVersion')!;
        watches.push(rv);
        switch (watches.length) {
          case 1: // one change, then the connection drops
            return lines([{ type: 'MODIFIED', object: nodeObject('6', { 'nvidia.com/cc.mode': 'off' }) }]);
          case 2:
            return status(410, 'Expired', 'too old resource version: 6 (8)');
          case 3:
            return status(500, 'InternalError', 'watch cache not ready');
          default: // stays open
            return lines([{ type: 'BOOKMARK', object: { kind: 'Node', metadata: { resourceVersion: '10' } } }], false);
        }
      }),
    );
    const seen: Array<[NodeUpdate, string | undefined]> = [];
    const delays: number[] = [];
    const stop = new AbortController();
    const watching = client().watch({
      signal: stop.signal,
      onNode: (node: KubeNode, update) => seen.push([update, node.labels['nvidia.com/cc.mode']]),
      delay: async (ms) => {
        delays.push(ms);
      },
    });
    const deadline = Date.now() + 5_000;
    while (watches.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    stop.abort();
    await watching;
    expect(watches).toEqual(['5', '6', '9', '9']);
    expect(seen).toEqual([
      ['relist', 'on'],
      ['modified', 'off'],
      ['relist', 'devtools'],
    ]);
    expect(delays).toEqual([1_000]);
  });
});

/** A backend with no processes: every device reads `modes` and switches at once. */
function fakeBackend(modes: DeviceModes) {
  const backend: CcBackend & { applied: string[] } = {
    name: 'gpu-admin-tools',
    canSwitch: true,
    command: 'fake',
    applied: [],
    async query(devices) {
      return new Map<PciAddress, QueryAnswer>(devices.map((d) => [d.address, { modes: { ...modes } }]));
    },
    async apply(device, step) {
      backend.applied.push(device.address);
      Object.assign(modes, step);
    },
    async set(device, step) {
      backend.applied.push(device.address);
      Object.assign(modes, step);
    },
    async reset() {},
  };
  return backend;
}

describe('cc-manager run against a failing API server (msw)', () => {
  async function reconcilerWith(labels: Record<string, string>) {
    const { sysfs } = simNode('iommufd-h200-2');
    await bindAll(sysfs);
    const backend = fakeBackend({ cc: 'off', ppcie: 'off' });
    const reconcile = createReconciler({
      sysfs,
      backend,
      capability: DEFAULT_CAPABILITY,
      logger: silentLogger(),
      maxParallel: 4,
      client: client(),
      defaultMode: 'on',
      evictOperands: true,
      operandWaitMs: 1_000,
      operandSocketPrefix: 'sandbox-',
      delay: async () => {},
    });
    const patches: Array<Record<string, string>> = [];
    const current = { ...labels };
    let rv = 5;
    server.use(http.get(`${NODES}/n1`, () => HttpResponse.json(nodeObject(String(rv), current))));
    /** A merge patch applied to the node's labels, as the API server would. */
    const merge = (patch: Record<string, string>) => {
      patches.push(patch);
      Object.assign(current, patch);
      return HttpResponse.json(nodeObject(String(++rv), current));
    };
    return { backend, reconcile, patches, merge };
  }

  it('Events refused (403): the switch still happens and the state labels are written', async () => {
    const { backend, reconcile, patches, merge } = await reconcilerWith({
      'nvidia.com/cc.mode': 'on',
      'nvidia.com/gpu.deploy.vfio-manager': 'true',
    });
    server.use(
      http.post(`${BASE}/api/v1/namespaces/default/events`, () => status(403, 'Forbidden', 'cannot create events')),
      http.patch(`${NODES}/n1`, async ({ request }) => {
        const body = (await request.json()) as { metadata: { labels: Record<string, string> } };
        return merge(body.metadata.labels);
      }),
    );
    const outcome = await reconcile(new AbortController().signal);
    expect(outcome.ok).toBe(true);
    expect(backend.applied).toHaveLength(2);
    expect(patches).toEqual([
      { 'nvidia.com/cc.ready.state': '' },
      { 'nvidia.com/gpu.deploy.vfio-manager': 'paused-for-cc-mode-change' },
      { 'nvidia.com/gpu.deploy.vfio-manager': 'true' },
      { 'nvidia.com/cc.mode.state': 'on', 'nvidia.com/cc.ready.state': 'true' },
    ]);
  });

  it('pausing the operands refused (403): no device is touched, and the reconcile fails for a retry', async () => {
    const { backend, reconcile, merge } = await reconcilerWith({
      'nvidia.com/cc.mode': 'on',
      'nvidia.com/gpu.deploy.vfio-manager': 'true',
    });
    server.use(
      http.post(`${BASE}/api/v1/namespaces/default/events`, () => HttpResponse.json({}, { status: 201 })),
      http.patch(`${NODES}/n1`, async ({ request }) => {
        const body = (await request.json()) as { metadata: { labels: Record<string, string> } };
        if (Object.keys(body.metadata.labels).some((k) => k.startsWith('nvidia.com/gpu.deploy.'))) {
          return status(403, 'Forbidden', 'nodes "n1" is forbidden: cannot patch');
        }
        return merge(body.metadata.labels);
      }),
    );
    const error = await failure(reconcile(new AbortController().signal));
    expect(error.code).toBe('ERR_GPUCC_KUBE_FORBIDDEN');
    expect(backend.applied).toEqual([]);
  });
});
