import path from 'node:path';
import { localFs, type Service, startService } from '@gpucc/hal';
import { logTail, until } from './wait.js';

/** One resource as the kubelet's device manager records it (test/k8s/cmd/devicemanager-harness). */
export interface ManagedResource {
  capacity: number;
  allocatable: number;
  devices: Array<{ id: string; health: string; numa: number[] }>;
}

export interface ManagerState {
  resources: Record<string, ManagedResource>;
  starts: number;
  checkpoint: {
    Data: {
      PodDeviceEntries: Array<{
        PodUID: string;
        ContainerName: string;
        ResourceName: string;
        DeviceIDs: Record<string, string[]>;
      }> | null;
      RegisteredDevices: Record<string, string[]> | null;
    };
  } | null;
}

/** What a container gets from the device manager at admission (the kubelet hands it to the runtime). */
export interface ContainerDevices {
  deviceIDs: string[];
  devices: Array<{ hostPath: string; containerPath: string; permissions: string }>;
  cdiDevices: string[];
  envs: Record<string, string>;
  annotations: Record<string, string>;
}

/** The kubelet's real device manager in our harness, serving `<root>/var/lib/kubelet/device-plugins`. */
export class DeviceManager {
  private readonly replies: Array<(line: string) => void> = [];
  private queue: Promise<unknown> = Promise.resolve();

  private service!: Service;

  private constructor(readonly logFile: string) {}

  /**
   * Starts the harness on `pluginDir` (the kubelet's /var/lib/kubelet/device-plugins); its klog
   * output goes to `logFile` (default: devicemanager-harness.log beside the plugin dir).
   */
  static async start(
    binDir: string,
    pluginDir: string,
    numaNodes: number,
    logFile = path.join(path.dirname(pluginDir), 'devicemanager-harness.log'),
  ): Promise<DeviceManager> {
    const manager = new DeviceManager(logFile);
    const ready = new Promise<string>((resolve) => manager.replies.push(resolve));
    manager.service = startService({
      command: path.join(binDir, 'devicemanager-harness'),
      args: ['--plugin-dir', pluginDir, '--numa-nodes', String(numaNodes), '--v', '2'],
      logFile,
      onStdoutLine: (line) => {
        if (line.startsWith('{')) manager.replies.shift()?.(line);
      },
    });
    const exit = manager.service.exited.then((e) => `exited ${e.signal ?? e.code}`);
    const outcome = await Promise.race([ready, exit]);
    if (!outcome.startsWith('{')) {
      throw new Error(`device manager did not start (${outcome}):\n${logTail(() => localFs.readText(logFile))}`);
    }
    return manager;
  }

  /** One request, one reply; requests are serialised as the harness reads one line at a time. */
  request<T>(body: Record<string, unknown>): Promise<T> {
    const run = async () => {
      const reply = new Promise<string>((resolve) => this.replies.push(resolve));
      this.service.write(`${JSON.stringify(body)}\n`);
      const exited = this.service.exited.then((e) => `{"ok":false,"error":"exited ${e.signal ?? e.code}"}`);
      const line = await Promise.race([reply, exited]);
      const parsed = JSON.parse(line) as { ok: boolean; error?: string } & T;
      if (!parsed.ok) throw new Error(`device manager ${String(body.op)}: ${parsed.error}`);
      return parsed;
    };
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }

  state(): Promise<ManagerState> {
    return this.request<ManagerState>({ op: 'state' });
  }

  allocate(pod: string, resource: string, count: number, container = 'main'): Promise<ContainerDevices> {
    return this.request<ContainerDevices>({ op: 'allocate', pod, container, resource, count });
  }

  /** A kubelet restart: the manager stops, a new one starts, removes every socket and reads the checkpoint. */
  restart(): Promise<{ starts: number }> {
    return this.request<{ starts: number }>({ op: 'restart' });
  }

  /** Waits until `resource` has `allocatable` devices in the manager's own record. */
  async waitAllocatable(
    resource: string,
    allocatable: number,
    timeoutMs = 30_000,
    intervalMs = 50,
  ): Promise<ManagedResource> {
    return until(
      `${resource} allocatable ${allocatable}`,
      async () => {
        const r = (await this.state()).resources[resource];
        return r && r.allocatable === allocatable ? r : undefined;
      },
      timeoutMs,
      intervalMs,
    );
  }

  async stop(): Promise<void> {
    try {
      await this.request({ op: 'stop' });
    } catch {
      // already gone
    }
    await this.service.stop(10_000);
  }
}
