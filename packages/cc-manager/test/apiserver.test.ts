import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { createNodeClient, type KubeNode, loadKubeConfig, type NodeUpdate } from '@gpucc/daemon/kube';
import { isGpuccError } from '@gpucc/hal';
import { type ApiServer, listEvents, setLabels, startApiServer } from '@gpucc/sim';
import { silentLogger } from '@gpucc/testbed/fixtures';
import { simNode } from '@gpucc/testbed/vitest';
import { afterEach, describe, expect, it } from 'vitest';

const SIM = path.resolve(import.meta.dirname, '../../sim/bin/gpucc-sim.mjs');
const exec = promisify(execFile);
const servers: ApiServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function setup(profile = 'h100-pcie-1') {
  const { root } = simNode(profile);
  const server = await startApiServer({ root, bookmarkMs: 200 });
  servers.push(server);
  const client = createNodeClient({
    nodeName: server.nodeName,
    config: loadKubeConfig(server.kubeconfigPath),
    logger: silentLogger(),
    component: 'cc-manager',
  });
  const raw = (p: string, init: RequestInit = {}) =>
    fetch(`${server.url}${p}`, {
      ...init,
      headers: { authorization: 'Bearer gpucc-sim-token', ...(init.headers as Record<string, string>) },
    });
  return { root, server, client, raw };
}

/** Collects what a watch hands over, and lets a test wait for a condition on it. */
function collector() {
  const seen: Array<{ update: NodeUpdate; node: KubeNode }> = [];
  const waiters: Array<() => void> = [];
  return {
    seen,
    onNode: (node: KubeNode, update: NodeUpdate) => {
      seen.push({ node, update });
      for (const w of waiters.splice(0)) w();
    },
    async until(test: () => boolean, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!test()) {
        if (Date.now() > deadline) throw new Error(`not reached; seen ${JSON.stringify(seen.map((s) => s.update))}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 50);
        });
      }
    },
  };
}

describe('fake API server with the node client', () => {
  it('get, and a JSON merge patch of exactly the given labels (null removes one)', async () => {
    const { client, server } = await setup();
    const node = await client.getNode();
    expect(node).toMatchObject({ name: 'gpucc-sim-node', resourceVersion: '1' });
    expect(node.labels['amd.feature.node.kubernetes.io/snp']).toBe('true');
    const after = await client.patchLabels({ 'nvidia.com/cc.mode.state': 'on', 'nvidia.com/gpu.present': null });
    expect(after?.labels['nvidia.com/cc.mode.state']).toBe('on');
    expect(after?.labels['nvidia.com/gpu.present']).toBeUndefined();
    expect(after?.resourceVersion).toBe('2');
    const patch = server.requests.find((r) => r.method === 'PATCH')!;
    expect(patch.contentType).toMatch(/^application\/merge-patch\+json/);
    expect(patch.body).toEqual({
      metadata: { labels: { 'nvidia.com/cc.mode.state': 'on', 'nvidia.com/gpu.present': null } },
    });
    // bad input never reaches the server
    await expect(client.patchLabels({ 'nvidia.com/cc.mode.state': 'not valid!' })).rejects.toThrow(
      /invalid label value/,
    );
    expect(server.requests.filter((r) => r.method === 'PATCH')).toHaveLength(1);
  });

  it('watch: the first read, then a label set by `gpucc-sim label` in another process; fieldSelector on its own node', async () => {
    const { root, client, server } = await setup();
    const c = collector();
    const stop = new AbortController();
    const watching = client.watch({ onNode: c.onNode, signal: stop.signal });
    await c.until(() => server.watchCount() === 1);
    const label = await exec(process.execPath, [SIM, 'label', root, 'nvidia.com/cc.mode=devtools']);
    expect(label.stdout).toBe('nvidia.com/cc.mode=devtools\n');
    await c.until(() => c.seen.some((s) => s.node.labels['nvidia.com/cc.mode'] === 'devtools'));
    expect(c.seen.map((s) => s.update)).toEqual(['relist', 'modified']);
    stop.abort();
    await watching;
    expect(server.requests.find((r) => r.query.watch === 'true')?.query).toMatchObject({
      fieldSelector: 'metadata.name=gpucc-sim-node',
      resourceVersion: '1',
      allowWatchBookmarks: 'true',
    });
  });

  it('relists on 410 Gone: a change made while the watch was down and the history compacted is not lost', async () => {
    const { root, client, server } = await setup();
    const c = collector();
    const stop = new AbortController();
    const delays: number[] = [];
    const watching = client.watch({
      onNode: c.onNode,
      signal: stop.signal,
      delay: async (ms) => {
        delays.push(ms);
      },
    });
    await c.until(() => server.watchCount() === 1);
    // The connection drops; meanwhile the label changes and the server compacts its history.
    server.dropWatches();
    setLabels(root, { 'nvidia.com/cc.mode': 'ppcie' });
    server.compact();
    await c.until(() => c.seen.some((s) => s.update === 'relist' && s.node.labels['nvidia.com/cc.mode'] === 'ppcie'));
    await c.until(() => server.watchCount() === 1);
    stop.abort();
    await watching;
    // Resumed from the version it had (1), got 410 Gone, read the node again (2) and watched from there.
    const watches = server.requests.filter((r) => r.query.watch === 'true').map((r) => r.query.resourceVersion);
    expect(watches).toEqual(['1', '1', '2']);
    expect(c.seen.map((s) => s.update)).toEqual(['relist', 'relist']);
    expect(delays).toEqual([1_000]); // the dropped connection, retried after the (injected) backoff
  });

  it('events: core/v1 through the client (about the Node), events.k8s.io/v1 too, and `gpucc-sim events` lists them', async () => {
    const { root, client, raw } = await setup();
    await client.getNode();
    await client.createEvent({
      type: 'Warning',
      reason: 'InvalidCcMode',
      message: 'label nvidia.com/cc.mode="On" is not a CC mode',
    });
    const created = await raw('/apis/events.k8s.io/v1/namespaces/default/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        metadata: { generateName: 'gpucc-sim-node.' },
        regarding: { kind: 'Node', name: 'gpucc-sim-node' },
        reason: 'CcModeSwitched',
        note: '1 GPU switched',
        type: 'Normal',
        action: 'Switch',
        reportingController: 'gpucc/cc-manager',
        reportingInstance: 'x',
        eventTime: new Date().toISOString(),
      }),
    });
    expect(created.status).toBe(201);
    const [core] = listEvents(root);
    expect(core).toMatchObject({
      type: 'Warning',
      reason: 'InvalidCcMode',
      involvedObject: { kind: 'Node', name: 'gpucc-sim-node' },
      source: { component: 'cc-manager', host: 'gpucc-sim-node' },
      metadata: { namespace: 'default' },
    });
    const printed = (await exec(process.execPath, [SIM, 'events', root])).stdout;
    expect(printed).toMatch(
      /Warning\s+InvalidCcMode\s+node\/gpucc-sim-node\s+label nvidia\.com\/cc\.mode="On" is not a CC mode/,
    );
    expect(printed).toMatch(/Normal\s+CcModeSwitched\s+node\/gpucc-sim-node\s+1 GPU switched/);
  });

  it('answers as the API server does: 401 without the token, 404, 409, 415, 422, 400 for other field selectors', async () => {
    const { server, raw } = await setup();
    expect((await fetch(`${server.url}/api/v1/nodes`)).status).toBe(401);
    expect((await raw('/api/v1/nodes/other')).status).toBe(404);
    expect((await raw('/api/v1/nodes?fieldSelector=spec.unschedulable%3Dfalse')).status).toBe(400);
    const list = await (await raw('/api/v1/nodes?fieldSelector=metadata.name%3Dnope')).json();
    expect(list).toMatchObject({ kind: 'NodeList', items: [] });
    const patch = (type: string, body: unknown) =>
      raw('/api/v1/nodes/gpucc-sim-node', {
        method: 'PATCH',
        headers: { 'content-type': type },
        body: JSON.stringify(body),
      });
    const json = await patch('application/json-patch+json', [
      { op: 'add', path: '/metadata/labels/nvidia.com~1cc.mode', value: 'on' },
    ]);
    expect(json.status).toBe(200);
    expect(
      ((await json.json()) as { metadata: { labels: Record<string, string> } }).metadata.labels['nvidia.com/cc.mode'],
    ).toBe('on');
    const strategic = await patch('application/strategic-merge-patch+json', { metadata: { labels: { a: 'b' } } });
    expect(strategic.status).toBe(200);
    expect(
      (await patch('application/merge-patch+json', { metadata: { resourceVersion: '1', labels: { a: 'c' } } })).status,
    ).toBe(409);
    expect((await patch('application/apply-patch+yaml', {})).status).toBe(415);
    const invalid = await patch('application/merge-patch+json', { metadata: { labels: { a: 'bad value' } } });
    expect(invalid.status).toBe(422);
    expect(((await invalid.json()) as { reason: string }).reason).toBe('Invalid');
    const immutable = await patch('application/merge-patch+json', { metadata: { name: 'renamed' } });
    expect(immutable.status).toBe(422);
  });

  it('`gpucc-sim label` refuses a bad key or value (exit 2) and changes nothing', async () => {
    const { root } = await setup();
    const bad = await exec(process.execPath, [SIM, 'label', root, 'nvidia.com/cc.mode=not ok']).catch((e) => e);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/ERR_GPUCC_INVALID_LABEL_VALUE/);
    const labels = JSON.parse((await exec(process.execPath, [SIM, 'label', root, '--json'])).stdout);
    expect(labels['nvidia.com/cc.mode']).toBeUndefined();
  });

  it('a kubeconfig that cannot be loaded is ERR_GPUCC_KUBE_CONFIG', () => {
    let error: unknown;
    try {
      loadKubeConfig('/nonexistent/kubeconfig');
    } catch (e) {
      error = e;
    }
    expect(isGpuccError(error, 'ERR_GPUCC_KUBE_CONFIG')).toBe(true);
    expect(() => loadKubeConfig(undefined, {})).toThrow(/not running in a Kubernetes pod/);
  });
});
