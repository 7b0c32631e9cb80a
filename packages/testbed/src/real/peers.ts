import path from 'node:path';
import { discoverPci, localFs, runTool } from '@gpucc/hal';
import { openSimulatedHost } from '@gpucc/sim';
import {
  type ApiServerPeer,
  type KubeletPeer,
  type KubeletView,
  kubeletRefused,
  type PeerContext,
  type PodAllocation,
} from '../suite/peers.js';
import { type Peers, SUITE_DIR } from '../suite/suite.js';
import { ControlPlane } from './control-plane.js';
import { DeviceManager } from './device-manager.js';
import { until } from './wait.js';

/**
 * The suite's peers made of the real components of scripts/k8s.sh: kube-apiserver + etcd, and the
 * kubelet's own device manager in its harness (test/k8s). `bin` is what `sh scripts/k8s.sh path` prints.
 */
export function realPeers(bin: string): (ctx: PeerContext) => Promise<Peers> {
  return async (ctx) => {
    const release = await kubernetesRelease(bin);
    return { apiServer: new RealApiServer(bin, release, ctx), kubelet: new RealKubelet(bin, release, ctx) };
  };
}

/** `v1.36.3`: the release the components were built from (one go.mod pins all three). */
export async function kubernetesRelease(bin: string): Promise<string> {
  const { stdout } = await runTool({
    command: path.join(bin, 'kube-apiserver'),
    args: ['--version'],
    timeoutMs: 10_000,
  });
  return stdout.trim().replace(/^Kubernetes\s+/, '');
}

const PATCH = 'application/strategic-merge-patch+json';

/** kube-apiserver + etcd on loopback, with the node object as a kubelet registers it. */
export class RealApiServer implements ApiServerPeer {
  readonly describe: string;
  private cp: ControlPlane | undefined;
  private kubeconfigFile = '';

  constructor(
    private readonly bin: string,
    release: string,
    private readonly ctx: PeerContext,
  ) {
    this.describe = `API server: kube-apiserver ${release} + etcd (real)`;
  }

  async start(): Promise<void> {
    if (this.cp) {
      await this.cp.startApiServer();
      this.ctx.note('apiserver', `kube-apiserver started again on ${this.cp.url}`);
      return;
    }
    const dir = path.join(this.ctx.root, SUITE_DIR, 'k8s');
    localFs.makeDir(dir);
    this.cp = await ControlPlane.start(this.bin, dir);
    const node = { apiVersion: 'v1', kind: 'Node', metadata: { name: this.ctx.nodeName } };
    const created = await this.cp.api('POST', '/api/v1/nodes', node);
    if (created.status !== 201)
      throw new Error(`creating node ${this.ctx.nodeName}: ${created.status} ${message(created.body)}`);
    // An admin token: cc-manager's own RBAC and admission policy are the real tier's (test/real/cc-manager.test.ts).
    this.kubeconfigFile = this.cp.kubeconfig('suite');
    this.ctx.note('apiserver', `kube-apiserver on ${this.cp.url}, etcd on ${this.cp.etcdUrl} (logs: ${dir})`);
  }

  async stop(): Promise<void> {
    await this.cp?.stopApiServer();
  }

  async close(): Promise<void> {
    await this.cp?.stop();
  }

  async setLabels(changes: Record<string, string | null>): Promise<void> {
    const r = await this.plane().api('PATCH', this.nodePath(), { metadata: { labels: changes } }, undefined, PATCH);
    if (r.status !== 200) throw new Error(`labelling node ${this.ctx.nodeName}: ${r.status} ${message(r.body)}`);
  }

  async labels(): Promise<Record<string, string>> {
    const r = await this.plane().api('GET', this.nodePath());
    if (r.status !== 200) throw new Error(`reading node ${this.ctx.nodeName}: ${r.status} ${message(r.body)}`);
    return r.body.metadata?.labels ?? {};
  }

  kubeconfig(): string {
    if (!this.kubeconfigFile) throw new Error('kube-apiserver has not started');
    return this.kubeconfigFile;
  }

  private nodePath(): string {
    return `/api/v1/nodes/${this.ctx.nodeName}`;
  }

  private plane(): ControlPlane {
    if (!this.cp) throw new Error('kube-apiserver has not started');
    return this.cp;
  }
}

/** The kubelet's device manager (pkg/kubelet/cm/devicemanager) in the harness of test/k8s. */
export class RealKubelet implements KubeletPeer {
  readonly describe: string;
  private manager: DeviceManager | undefined;
  private restarts = 0;
  private pods = 0;

  constructor(
    private readonly bin: string,
    release: string,
    private readonly ctx: PeerContext,
  ) {
    this.describe = `kubelet: the kubelet's device manager ${release} (real)`;
  }

  private get pluginDir(): string {
    return path.join(this.ctx.root, 'var/lib/kubelet/device-plugins');
  }

  async start(): Promise<void> {
    // The NUMA nodes of the machine the manager believes it runs on: those the node's PCI devices sit on.
    const numa = discoverPci(openSimulatedHost(this.ctx.root)).devices.map((d) => d.numaNode);
    const numaNodes = Math.max(0, ...numa) + 1;
    const logFile = path.join(this.ctx.root, SUITE_DIR, 'kubelet.log');
    this.manager = await DeviceManager.start(this.bin, this.pluginDir, numaNodes, logFile);
    this.ctx.note('kubelet', `the kubelet's device manager serving var/lib/kubelet/device-plugins/kubelet.sock`);
  }

  async stop(): Promise<void> {
    await this.manager?.stop();
    this.manager = undefined;
  }

  async state(): Promise<KubeletView> {
    const state = await this.running().state();
    const resources: KubeletView['resources'] = {};
    for (const [name, r] of Object.entries(state.resources)) {
      resources[name] = {
        capacity: r.capacity,
        allocatable: r.allocatable,
        devices: r.devices.map((d) => ({ ID: d.id, health: d.health })),
      };
    }
    const entries = state.checkpoint?.Data.PodDeviceEntries ?? [];
    return {
      resources,
      allocations: entries.map((e) => ({
        podUid: e.PodUID,
        containerName: e.ContainerName,
        resourceName: e.ResourceName,
        deviceIds: Object.values(e.DeviceIDs).flat().sort(),
      })),
      restarts: this.restarts,
    };
  }

  async allocate(resource: string, count: number): Promise<PodAllocation> {
    this.pods += 1;
    const podUid = `gpucc-suite-pod-${this.pods}`;
    try {
      const got = await this.running().allocate(podUid, resource, count, 'workload');
      return {
        podUid,
        resourceName: resource,
        deviceIds: got.deviceIDs,
        deviceNodes: got.devices.map((d) => d.hostPath),
        cdiDevices: got.cdiDevices,
      };
    } catch (error) {
      // The harness prefixes the manager's error with its own request's name.
      const text = (error instanceof Error ? error.message : String(error)).replace(/^device manager allocate: /, '');
      throw kubeletRefused(text, error);
    }
  }

  /**
   * The harness cannot end a pod (its pods stay active), so the pods' end is a new device manager
   * without the checkpoint: every pod's devices come back, and the plugin registers again
   * (docs/real-kubernetes.md, the device manager).
   */
  async release(resource: string): Promise<void> {
    const before = await this.state();
    if (!before.allocations.some((a) => a.resourceName === resource)) return;
    this.ctx.note('kubelet', `the pods holding ${resource} end: a new device manager without the checkpoint`);
    await this.stop();
    await localFs.removeFile(path.join(this.pluginDir, 'kubelet_internal_checkpoint'));
    await this.start();
    await until(
      'the device plugin registered again with the new device manager',
      async () => {
        const now = await this.state();
        return Object.entries(before.resources).every(([name, r]) => now.resources[name]?.capacity === r.capacity);
      },
      30_000,
    );
  }

  async restart(): Promise<void> {
    await this.running().restart();
    this.restarts += 1;
  }

  private running(): DeviceManager {
    if (!this.manager) throw new Error("the kubelet's device manager is not running");
    return this.manager;
  }
}

function message(body: unknown): string {
  return typeof body === 'object' && body !== null && 'message' in body ? String(body.message) : JSON.stringify(body);
}
