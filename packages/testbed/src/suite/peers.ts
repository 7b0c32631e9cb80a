import { GpuccError, localFs, type Service } from '@gpucc/hal';
import {
  controlRequest,
  KUBECONFIG_FILE,
  type KubeletAllocation,
  type KubeletState,
  nodeLabels,
  SERVER_FILE,
  setLabels,
} from '@gpucc/sim';

/**
 * The two parts of Kubernetes around the operands on a node, each one small interface with two
 * implementations: the fakes of `gpucc-sim` (every laptop, and the faults only a fake can inject)
 * and the real components of scripts/k8s.sh (packages/testbed/src/real).
 */

/** What the suite needs of the API server: the node's labels, and a kubeconfig for cc-manager. */
export interface ApiServerPeer {
  /** The timeline's line for it, saying whether it is real. */
  readonly describe: string;
  /** Starts it (again, after `stop`: on the same address and data). */
  start(): Promise<void>;
  /** Stops the server; its data stays for the next `start` (an outage). */
  stop(): Promise<void>;
  /** Stops it and everything it stored on (etcd); the suite's end. */
  close(): Promise<void>;
  /** One merge of these labels into the node (null removes). */
  setLabels(changes: Record<string, string | null>): Promise<void>;
  labels(): Promise<Record<string, string>>;
  /** A kubeconfig file the operands read to reach it. */
  kubeconfig(): string;
}

/** A resource as the kubelet records it. `streaming` is undefined where the kubelet does not say. */
export interface KubeletResource {
  capacity: number;
  allocatable: number;
  streaming?: boolean;
  devices: Array<{ ID: string; health: string }>;
}

/** What the kubelet was told and what it allocated: the common part of the fake's and the real one's state. */
export interface KubeletView {
  resources: Record<string, KubeletResource>;
  allocations: Array<{ podUid: string; containerName: string; resourceName: string; deviceIds: string[] }>;
  /** Restarts since the suite started it. */
  restarts: number;
}

/** What a pod's container gets at admission. */
export interface PodAllocation {
  podUid: string;
  resourceName: string;
  deviceIds: string[];
  /** Host paths of the device nodes handed to the container. */
  deviceNodes: string[];
  /** Fully qualified CDI device names. */
  cdiDevices: string[];
}

/**
 * What the suite needs of the kubelet's device manager. A refused admission rejects with
 * ERR_GPUCC_SIM_KUBELET_REFUSED, the kubelet's message in it.
 */
export interface KubeletPeer {
  readonly describe: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  state(): Promise<KubeletView>;
  /** Admission of a pod asking for `count` devices of `resource`. */
  allocate(resource: string, count: number): Promise<PodAllocation>;
  /** The pods holding `resource`'s devices end: the kubelet gives the devices back. */
  release(resource: string): Promise<void>;
  /** A kubelet restart: streams close, sockets are deleted, the plugins must register again. */
  restart(): Promise<void>;
}

/** What a peer gets from the suite: its processes' start (logged in the suite's dir) and a wait. */
export interface PeerContext {
  root: string;
  nodeName: string;
  /** Starts `gpucc-sim` with these arguments, its output in the suite's `<logName>.log`. */
  startSim(args: string[], logName: string): Service;
  /** Polls until `probe` holds or `service` exits (ERR_GPUCC_SIM_SUITE_TIMEOUT). */
  waitFor(what: string, probe: () => boolean | Promise<boolean>, service?: Service): Promise<void>;
  /** Lines on the timeline. */
  note(actor: string, text: string): void;
}

/** `gpucc-sim apiserver`: the node object in a file of the node, served on loopback. */
export class FakeApiServer implements ApiServerPeer {
  readonly describe = 'API server: gpucc-sim apiserver (fake)';
  private service: Service | undefined;

  constructor(
    private readonly ctx: PeerContext,
    private readonly port: number,
  ) {}

  async start(): Promise<void> {
    const file = `${this.ctx.root}/${SERVER_FILE}`;
    await localFs.removeFile(file);
    const args = ['apiserver', this.ctx.root, '--quiet', '--port', String(this.port), '--node-name', this.ctx.nodeName];
    const service = this.ctx.startSim(args, 'apiserver');
    this.service = service;
    await this.ctx.waitFor('API server listening', () => localFs.exists(file), service);
    this.ctx.note('apiserver', `fake Kubernetes API server on 127.0.0.1:${this.port}`);
  }

  async stop(): Promise<void> {
    await this.service?.stop(2000);
    this.service = undefined;
  }

  close(): Promise<void> {
    return this.stop();
  }

  async setLabels(changes: Record<string, string | null>): Promise<void> {
    setLabels(this.ctx.root, changes);
  }

  async labels(): Promise<Record<string, string>> {
    return nodeLabels(this.ctx.root);
  }

  kubeconfig(): string {
    return `${this.ctx.root}/${KUBECONFIG_FILE}`;
  }
}

/** `gpucc-sim kubelet`, driven through its control socket. */
export class FakeKubelet implements KubeletPeer {
  readonly describe = 'kubelet: gpucc-sim kubelet (fake)';
  private service: Service | undefined;

  constructor(private readonly ctx: PeerContext) {}

  async start(): Promise<void> {
    const service = this.ctx.startSim(['kubelet', this.ctx.root], 'kubelet');
    this.service = service;
    await this.ctx.waitFor(
      'kubelet listening',
      () =>
        this.state().then(
          () => true,
          () => false,
        ),
      service,
    );
    this.ctx.note('kubelet', 'fake kubelet listening on var/lib/kubelet/device-plugins/kubelet.sock');
  }

  async stop(): Promise<void> {
    await this.service?.stop(2000);
    this.service = undefined;
  }

  /** The fake's whole state (a KubeletView and more: rejected registrations, options). */
  state(): Promise<KubeletState> {
    return controlRequest(this.ctx.root, 'GET', '/status') as Promise<KubeletState>;
  }

  async allocate(resource: string, count: number): Promise<PodAllocation> {
    const got = (await controlRequest(this.ctx.root, 'POST', '/allocate', { resource, count })) as KubeletAllocation;
    return {
      podUid: got.podUid,
      resourceName: got.resourceName,
      deviceIds: got.deviceIds,
      deviceNodes: got.response.devices.map((d) => d.host_path),
      cdiDevices: got.response.cdi_devices.map((d) => d.name),
    };
  }

  async release(resource: string): Promise<void> {
    await controlRequest(this.ctx.root, 'POST', '/release', { resource });
  }

  async restart(): Promise<void> {
    await controlRequest(this.ctx.root, 'POST', '/restart', { delayMs: 0 });
  }
}

/** A refusal of the kubelet in the one form the suite's callers handle. */
export function kubeletRefused(message: string, cause: unknown): GpuccError {
  return new GpuccError('ERR_GPUCC_SIM_KUBELET_REFUSED', message, {
    hint: 'the device plugin answered the kubelet with an error, or too few healthy devices are free',
    cause,
  });
}
