import { readdirSync } from 'node:fs';
import path from 'node:path';
import { CC_MODE_LABEL, CC_MODE_STATE_LABEL, CC_READY_STATE_LABEL } from '@gpucc/cc-manager';
import { readCcState, readNodeSpec, writeToolSettings } from '@gpucc/sim';
import { ControlPlane } from '@gpucc/testbed/real';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordFigure } from './figures.js';
import { kubectl } from './kubectl.js';
import { boundNode } from './node.js';
import {
  freePort,
  type Proc,
  packageBin,
  REPO,
  realTier,
  removeTempDirs,
  startProcess,
  stopAll,
  tempDir,
  until,
} from './processes.js';

/**
 * cc-manager against a real kube-apiserver + etcd (RBAC and Node authorizers), with the RBAC of
 * deploy/kubernetes and its ServiceAccount's token, switching a simulated hgx-h100-8 node whose
 * fake CC tools run at hardware latency.
 */
const tier = realTier();
const NODE = 'gpucc-sim-node';
const NAMESPACE = 'gpucc-system';
const MODE = CC_MODE_LABEL;
const STATE = CC_MODE_STATE_LABEL;
const READY = CC_READY_STATE_LABEL;
const DEPLOY = ['cc-manager', 'vfio-manager', 'kata-manager', 'sandbox-device-plugin'].map(
  (o) => `nvidia.com/gpu.deploy.${o}`,
);

describe.skipIf(!tier.bin)('cc-manager with a real kube-apiserver', () => {
  let cp: ControlPlane;
  let root: string;
  let ccManager: Proc;
  let gpus: string[];

  const labels = async (): Promise<Record<string, string>> => {
    const r = await cp.api('GET', `/api/v1/nodes/${NODE}`);
    return r.body.metadata?.labels ?? {};
  };
  const setLabels = (changes: Record<string, string | null>) =>
    cp.api(
      'PATCH',
      `/api/v1/nodes/${NODE}`,
      { metadata: { labels: changes } },
      undefined,
      'application/strategic-merge-patch+json',
    );
  const ccModes = () => gpus.map((address) => readCcState(root, address)?.cc);
  const events = async () => {
    const r = await cp.api('GET', `/api/v1/namespaces/default/events?fieldSelector=involvedObject.name=${NODE}`);
    return (r.body.items as Array<{ reason: string; message: string }>).map((e) => e.reason);
  };
  /** Sets the mode label and waits for cc-manager to report that state; returns the time it took. */
  const switchTo = async (mode: string, timeoutMs = 30_000) => {
    const started = performance.now();
    const r = await setLabels({ [MODE]: mode });
    expect(r.status).toBe(200);
    await until(`${STATE}=${mode}`, async () => (await labels())[STATE] === mode, timeoutMs);
    return performance.now() - started;
  };
  const startCcManager = async (token: string) => {
    ccManager = startProcess('cc-manager', process.execPath, [
      packageBin('cc-manager'),
      'run',
      '--host-root',
      root,
      '--log-format',
      'json',
      '--metrics-address',
      `127.0.0.1:${await freePort()}`,
      '--node-name',
      NODE,
      '--kubeconfig',
      cp.kubeconfig('cc-manager', token),
      '--operand-wait',
      '30000',
    ]);
  };

  beforeAll(async () => {
    cp = await ControlPlane.start(tier.bin!, tempDir('k8s'));
    root = boundNode('cc');
    // The fake tools at the latency of the real ones (start 150, set 150, reset 1700 ms).
    writeToolSettings(root, { startMs: 150, setMs: 150, resetMs: 1700 });
    gpus = readNodeSpec(root)
      // NVIDIA 3D controllers: the GPUs (the NVSwitches are bridges)
      .devices.filter((d) => d.vendor === 0x10de && d.class >> 8 === 0x0302)
      .map((d) => d.address);
    // The node as the kubelet registers it, selected for every operand and in mode off.
    const created = await cp.api('POST', '/api/v1/nodes', {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: NODE, labels: { [MODE]: 'off', ...Object.fromEntries(DEPLOY.map((l) => [l, 'true'])) } },
    });
    expect(created.status).toBe(201);
  }, 180_000);

  afterAll(async () => {
    await stopAll();
    await cp?.stop();
    removeTempDirs();
  }, 60_000);

  it('the manifests apply as deploy/README.md orders them; cc-manager runs with its pod-bound token and reads the node', async () => {
    // As a cluster admin: the namespace once, then an overlay (the base and node-events). The
    // node's labels are the GPU Operator's, so the gpu-operator overlay.
    for (const dir of ['deploy/kubernetes/namespace', 'deploy/kubernetes/overlays/gpu-operator']) {
      const applied = await kubectl(cp, ['apply', '--server-side', '-k', dir]);
      expect({ dir, code: applied.code, stderr: applied.stderr }).toEqual({ dir, code: 0, stderr: '' });
    }
    // The DaemonSet's pod on this node, as its controller would create it (no kubelet runs it).
    const ds = await cp.api('GET', `/apis/apps/v1/namespaces/${NAMESPACE}/daemonsets/gpucc-cc-manager`);
    expect(ds.status).toBe(200);
    const pod = await cp.api('POST', `/api/v1/namespaces/${NAMESPACE}/pods`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `gpucc-cc-manager-${NODE}`, labels: ds.body.spec.template.metadata.labels },
      spec: { ...ds.body.spec.template.spec, nodeName: NODE },
    });
    expect({ status: pod.status, message: pod.body.message }).toEqual({ status: 201, message: undefined });
    expect(pod.body.spec.serviceAccountName).toBe('cc-manager');
    const token = await cp.serviceAccountToken(NAMESPACE, 'cc-manager', {
      name: pod.body.metadata.name,
      uid: pod.body.metadata.uid,
    });
    // What the API server makes of the token: cc-manager's user, with the pod's node.
    const review = await cp.api(
      'POST',
      '/apis/authentication.k8s.io/v1/selfsubjectreviews',
      { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
      token,
    );
    expect(review.body.status.userInfo.username).toBe(`system:serviceaccount:${NAMESPACE}:cc-manager`);
    const node = await cp.api('GET', `/api/v1/nodes/${NODE}`);
    expect(review.body.status.userInfo.extra).toMatchObject({
      'authentication.kubernetes.io/pod-name': [pod.body.metadata.name],
      'authentication.kubernetes.io/pod-uid': [pod.body.metadata.uid],
      'authentication.kubernetes.io/node-name': [NODE],
      'authentication.kubernetes.io/node-uid': [node.body.metadata.uid],
    });
    await startCcManager(token);
    await until(`${STATE}=off`, async () => (await labels())[STATE] === 'off');
    expect(ccModes().every((m) => m === 'off')).toBe(true);
  }, 60_000);

  it('the admission policy: its own node and its own labels only, and only with a token bound to that node', async () => {
    const other = 'gpucc-other-node';
    const created = await cp.api('POST', '/api/v1/nodes', {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: other, labels: { [MODE]: 'off' } },
    });
    expect(created.status).toBe(201);
    const token = await cp.serviceAccountToken(NAMESPACE, 'cc-manager', {
      name: `gpucc-cc-manager-${NODE}`,
      uid: (await cp.api('GET', `/api/v1/namespaces/${NAMESPACE}/pods/gpucc-cc-manager-${NODE}`)).body.metadata.uid,
    });
    const patch = (node: string, changes: Record<string, string | null>, as = token, spec?: object) =>
      cp.api(
        'PATCH',
        `/api/v1/nodes/${node}`,
        { metadata: { labels: changes }, ...(spec ? { spec } : {}) },
        as,
        'application/strategic-merge-patch+json',
      );
    const refusal = (r: { status: number; body: { message?: string } }) => ({
      status: r.status,
      message: r.body.message,
    });

    // The API server enforces a policy once its informers have seen the policy and its binding, a
    // moment after they are applied: wait for that with dry-run patches (they go through admission
    // and change nothing), so the assertions below are about the policy, not about that moment.
    await until('the admission policy in force', async () => {
      const probe = await patch(`${other}?dryRun=All`, { [STATE]: 'on' });
      return probe.status === 403;
    });
    // RBAC lets it patch every node; the policy refuses every node but its own.
    expect(refusal(await patch(other, { [STATE]: 'on' }))).toEqual({
      status: 403,
      message: expect.stringMatching(
        /^nodes "gpucc-other-node" is forbidden: ValidatingAdmissionPolicy 'gpucc-cc-manager-own-node' with binding 'gpucc-cc-manager-own-node' denied request: cc-manager may change only the node its pod runs on/,
      ),
    });
    expect((await cp.api('GET', `/api/v1/nodes/${other}`)).body.metadata.labels[STATE]).toBeUndefined();
    // Its own node, a label outside its prefixes: refused.
    expect(refusal(await patch(NODE, { 'node-role.kubernetes.io/gpu': '' }))).toEqual({
      status: 403,
      message: expect.stringMatching(/denied request: cc-manager changes only nvidia\.com\/cc\.\*/),
    });
    // Its own node, its own label: allowed.
    const own = await patch(NODE, { 'nvidia.com/cc.probe': 'x' });
    expect(own.status).toBe(200);
    expect((await patch(NODE, { 'nvidia.com/cc.probe': null })).status).toBe(200);
    // Its own node, its own label, with a change of the node's spec: refused.
    expect(refusal(await patch(NODE, { 'nvidia.com/cc.probe': 'x' }, token, { unschedulable: true }))).toEqual({
      status: 403,
      message: expect.stringMatching(/denied request: cc-manager changes node labels, never the node's spec/),
    });
    const after = await cp.api('GET', `/api/v1/nodes/${NODE}`);
    expect({
      unschedulable: after.body.spec.unschedulable,
      probe: after.body.metadata.labels['nvidia.com/cc.probe'],
    }).toEqual({
      unschedulable: undefined,
      probe: undefined,
    });
    // The same identity with a token bound to no pod (no node claim): no node at all.
    const unbound = await cp.serviceAccountToken(NAMESPACE, 'cc-manager');
    expect(refusal(await patch(NODE, { 'nvidia.com/cc.probe': 'x' }, unbound))).toEqual({
      status: 403,
      message: expect.stringMatching(/cc-manager may change only the node its pod runs on/),
    });
  });

  it('namespace/, node-events/ and every overlay pass a server-side dry-run apply against this release', async () => {
    const overlays = readdirSync(path.join(REPO, 'deploy/kubernetes/overlays')).map(
      (o) => `deploy/kubernetes/overlays/${o}`,
    );
    expect(overlays.sort()).toEqual([
      'deploy/kubernetes/overlays/gpu-operator',
      'deploy/kubernetes/overlays/standalone',
    ]);
    const expected: Record<string, RegExp> = {
      'deploy/kubernetes/namespace': /namespace\/gpucc-system serverside-applied \(server dry run\)/,
      'deploy/kubernetes/node-events':
        /role\.rbac\.authorization\.k8s\.io\/gpucc-cc-manager-events serverside-applied \(server dry run\)/,
      ...Object.fromEntries(
        overlays.map((o) => [o, /daemonset\.apps\/gpucc-cc-manager serverside-applied \(server dry run\)/]),
      ),
    };
    for (const [dir, output] of Object.entries(expected)) {
      const r = await kubectl(cp, ['apply', '--server-side', '--dry-run=server', '-k', dir]);
      expect({ dir, code: r.code, stderr: r.stderr }).toEqual({ dir, code: 0, stderr: '' });
      expect(r.stdout).toMatch(output);
    }
  }, 60_000);

  it('switches the node on -> ppcie -> off by label, writing its state labels and Events', async () => {
    const onMs = await switchTo('on');
    expect(ccModes()).toEqual(gpus.map(() => 'on'));
    expect((await labels())[READY]).toBe('true');
    recordFigure('label change -> cc.mode.state=on, 8 GPUs at hardware latency, real API server (ms)', onMs);

    await switchTo('ppcie');
    expect(gpus.map((a) => readCcState(root, a)?.ppcie)).toEqual(gpus.map(() => 'on'));
    await switchTo('off');
    expect(ccModes()).toEqual(gpus.map(() => 'off'));
    const after = await labels();
    expect(after[READY]).toBe('false');
    for (const l of DEPLOY) expect(after[l]).toBe('true');
    // Every switch this cc-manager started posted its Events, or logged why one was lost (an Event is
    // for people: a slow API server may lose one, and that never fails or repeats a switch). The
    // CcModeSwitched Event follows the state label, so the last one may come a moment after it.
    let seen = { switches: 0, reasons: [] as string[], lost: [] as Array<Record<string, unknown>> };
    const count = (reason: string) =>
      seen.reasons.filter((r) => r === reason).length + seen.lost.filter((l) => l.reason === reason).length;
    const accounted = async () => {
      const logs = ccManager.logs();
      seen = {
        switches: logs.filter((l) => l.event === 'cc.switch.start').length,
        reasons: await events(),
        lost: logs.filter((l) => l.event === 'kube.event.failed'),
      };
      // Three switches ended (on, ppcie, off); one that failed and was retried has no CcModeSwitched.
      return count('CcModeSwitchStarted') >= seen.switches && count('CcModeSwitched') >= 3;
    };
    await until('every switch’s Events posted or their loss logged', accounted, 15_000).catch(() => undefined);
    expect(seen.switches, JSON.stringify(seen)).toBeGreaterThanOrEqual(3);
    expect(count('CcModeSwitchStarted'), JSON.stringify(seen)).toBeGreaterThanOrEqual(seen.switches);
    expect(count('CcModeSwitched'), JSON.stringify(seen)).toBeGreaterThanOrEqual(3);
    expect(seen.reasons.filter((r) => r === 'CcModeSwitchStarted').length, JSON.stringify(seen)).toBeGreaterThanOrEqual(
      1,
    );
  }, 180_000);

  it('a write its role does not allow fails with 403: cc-manager says so and changes no GPU', async () => {
    const role = await cp.api('GET', '/apis/rbac.authorization.k8s.io/v1/clusterroles/gpucc-cc-manager');
    const full = role.body.rules;
    const withoutPatch = full.map((r: { resources: string[]; verbs: string[] }) =>
      r.resources.includes('nodes') ? { ...r, verbs: r.verbs.filter((v) => v !== 'patch') } : r,
    );
    // An update of the role as it is now (its resourceVersion), with other rules.
    const put = async (rules: unknown) => {
      const now = await cp.api('GET', '/apis/rbac.authorization.k8s.io/v1/clusterroles/gpucc-cc-manager');
      return cp.api('PUT', '/apis/rbac.authorization.k8s.io/v1/clusterroles/gpucc-cc-manager', { ...now.body, rules });
    };
    expect((await put(withoutPatch)).status).toBe(200);
    const from = ccModes();
    const seen = ccManager.logs().length;
    await setLabels({ [MODE]: 'on' });
    const refused = await until('cc-manager to report the 403', () =>
      ccManager
        .logs()
        .slice(seen)
        .find((l) => JSON.stringify(l).includes('ERR_GPUCC_KUBE_FORBIDDEN')),
    );
    expect(JSON.stringify(refused)).toMatch(/403 Forbidden/);
    expect(JSON.stringify(refused)).toMatch(/cannot patch resource \\"nodes\\"/);
    expect(ccModes()).toEqual(from);
    expect((await labels())[STATE]).toBe('off');

    // Nothing is lost: with the permission back, the switch the label asks for happens.
    expect((await put(full)).status).toBe(200);
    await until(`${STATE}=on`, async () => (await labels())[STATE] === 'on', 90_000);
    expect(ccModes()).toEqual(gpus.map(() => 'on'));
  }, 180_000);

  it('a watch that expires (410 Gone) is relisted and the next label change still switches', async () => {
    // Writes move etcd's revision on; the API server restarted has no cache of the old one, so
    // cc-manager's watch resumes from a resource version that is gone.
    for (let i = 0; i < 5; i++) {
      await cp.api('POST', '/api/v1/namespaces/default/configmaps', {
        metadata: { generateName: 'churn-' },
        data: { i: String(i) },
      });
    }
    const seen = ccManager.logs().length;
    await cp.stopApiServer();
    await cp.startApiServer();
    await until('cc-manager to see 410 Gone', () =>
      ccManager
        .logs()
        .slice(seen)
        .some((l) => l.event === 'kube.watch.gone'),
    );
    await switchTo('off', 90_000);
    expect(ccModes()).toEqual(gpus.map(() => 'off'));
  }, 180_000);

  it('an API server restart in the middle of a switch: the switch completes once and the labels end right', async () => {
    const seen = ccManager.logs().length;
    const since = (event: string) => () =>
      ccManager
        .logs()
        .slice(seen)
        .find((l) => l.event === event);
    await setLabels({ [MODE]: 'on' });
    // This switch's first GPU reset under way (not an earlier switch's), then the kill.
    await until('cc-manager to start switching a GPU', since('cc.device.switch'));
    await cp.stopApiServer('SIGKILL');
    await cp.startApiServer();
    await until(`${STATE}=on`, async () => (await labels())[STATE] === 'on', 120_000);
    // The state label is written just before the switch's last log line.
    await until('cc-manager to log the end of the switch', since('cc.switch.done'));
    const logs = ccManager.logs().slice(seen);
    expect(logs.filter((l) => l.event === 'cc.switch.done')).toHaveLength(1);
    // One switch per GPU: none was repeated after the API server came back.
    expect(logs.filter((l) => l.event === 'cc.device.switch')).toHaveLength(gpus.length);
    expect(ccModes()).toEqual(gpus.map(() => 'on'));
    const end = await labels();
    expect(end[READY]).toBe('true');
    for (const l of DEPLOY) expect(end[l]).toBe('true');
  }, 180_000);
});

if (!tier.bin) {
  it.skip('real tier: cc-manager against kube-apiserver + etcd (not built: npm run test:real)');
}
