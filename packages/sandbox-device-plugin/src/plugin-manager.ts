import { type DirWatches, type Logger, watchDirs } from '@gpucc/daemon';
import type { Readiness } from '@gpucc/daemon/runtime';
import {
  CcNodeStateReader,
  type HostRoot,
  loadPciIds,
  PCI_DEVICES_DIR,
  type PciIdsDb,
  socketNameFor,
  VFIO_DEVICES_DIR,
  VFIO_DIR,
  type VfioModel,
} from '@gpucc/hal';
import { DEVICE_PLUGIN_DIR, KUBELET_SOCKET } from '@gpucc/hal/kubelet';
import type { TopologyCheck } from './allocate.js';
import { DeviceRecordWriter } from './device-record.js';
import { type DeviceState, diffDeviceState, nextDeviceState } from './device-state.js';
import type { Inventory } from './inventory.js';
import { PluginCounters } from './metrics.js';
import { KUBELET_SOCKET_PATH, type RegistrationSettings, registerOnce, Wakeup } from './registration.js';
import { ResourcePlugin } from './resource-plugin.js';
import { ResourceServer } from './resource-server.js';
import { DeviceScanner } from './scanner.js';
import { needsPciIds, type PluginSettings } from './settings.js';
import { hiddenNvswitches, type NodeCc, readNodeCc, sameNodeCc, type TopologyRule, topologyRule } from './topology.js';

const KUBELET_RESTARTED = 'kubelet restarted';

export interface PluginManagerOptions {
  sysfs: HostRoot;
  logger: Logger;
  settings: PluginSettings;
  /** Periodic rediscovery and serving check (what the watches miss: real sysfs sends no events). */
  resyncMs: number;
  registration: RegistrationSettings;
  /** How long calls in flight may take when a server stops. */
  stopGraceMs: number;
  /** A registered resource without a ListAndWatch stream for this long registers again. */
  streamlessMs: number;
  counters?: PluginCounters;
}

/**
 * Where device changes show up first (real sysfs sends no inotify events, so the resync covers it),
 * and the kubelet's socket directory (its restarts).
 */
const WATCHED_DIRS = [VFIO_DIR, VFIO_DEVICES_DIR, PCI_DEVICES_DIR, DEVICE_PLUGIN_DIR];

export interface ResourceStatus {
  resourceName: string;
  socket: string;
  serving: boolean;
  registered: boolean;
  registrations: number;
  streams: number;
  healthy: number;
  unhealthy: number;
  lastError?: string;
}

/**
 * The device plugin as a whole: one ResourcePlugin per resource name, device discovery on watch
 * events and on a timer, kubelet restart detection, readiness and graceful stop. Every change to
 * the plugins runs in one queue, so a scan never interleaves with a restart.
 */
export class PluginManager {
  readonly counters: PluginCounters;
  private state: DeviceState = new Map();
  /** Discovery: everything at start-up and resync, what the events named after a change. */
  private readonly scanner = new DeviceScanner();
  private readonly plugins = new Map<string, ResourcePlugin>();
  private readonly wakeup = new Wakeup();
  /** Armed at start, re-armed at every scan: a directory that appears later is picked up then. */
  private watches: DirWatches | undefined;
  private readonly streamless = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private queue: Promise<void> = Promise.resolve();
  private scanScheduled = false;
  private kubeletCheckScheduled = false;
  private kubeletSocketEvent = false;
  private stopping = false;
  private pciIds: PciIdsDb | undefined;
  private lastProblems = '';
  private lastSkipped = '';
  private lastModel: VfioModel | undefined;
  private lastRule = '';
  /** NVSwitches left out because --nvswitches is off (ppcie needs them in the pod). */
  private hiddenNvswitches = 0;
  private readonly ccRecord: CcNodeStateReader;
  private ruleMemo: { cc: NodeCc; devices: DeviceState; hidden: number; rule: TopologyRule } | undefined;

  private readonly record: DeviceRecordWriter;

  constructor(private readonly options: PluginManagerOptions) {
    this.record = new DeviceRecordWriter(options.sysfs, options.logger);
    this.ccRecord = new CcNodeStateReader(options.sysfs);
    this.counters = options.counters ?? new PluginCounters();
  }

  /** Watches, then discovers, serves and registers every resource. Registration goes on in the background. */
  async start(): Promise<void> {
    if (needsPciIds(this.options.settings)) {
      this.pciIds = loadPciIds(this.options.sysfs, this.options.settings.pciIds);
      const from = this.pciIds ? `${this.pciIds.origin === 'host' ? '/' : ''}${this.pciIds.source}` : undefined;
      this.options.logger.info(
        { event: 'pci-ids.source', source: from ?? null, origin: this.pciIds?.origin ?? null },
        from ? `per-model names from ${from}` : 'no pci.ids: per-model names fall back to NVIDIA_<device id>',
      );
    }
    // Watch before the first scan reads the host, so no change falls between the two.
    this.watches = watchDirs(
      this.options.sysfs,
      () => WATCHED_DIRS,
      (dir, name) => {
        if (dir === DEVICE_PLUGIN_DIR) this.onKubeletDirEvent(name);
        else {
          this.scanner.noteChange(dir, name);
          this.scheduleScan();
        }
      },
    );
    await this.enqueue(() => this.scan('start'));
    this.topologyRule(); // says the rule in force at start
    this.timer = setInterval(() => this.resync(), this.options.resyncMs);
    this.timer.unref();
  }

  /** Graceful stop: every stream gets an empty list, servers close, sockets go. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.timer);
    this.watches?.close();
    await this.queue; // the scan or restart in flight finishes first
    await Promise.all([...this.plugins.values()].map((plugin) => plugin.stop()));
    this.options.logger.info({ event: 'plugin.stop', resources: this.plugins.size }, 'every resource withdrawn');
  }

  /** Ready when every resource is served, registered and streamed from by the kubelet. */
  readiness(): Readiness {
    if (this.stopping) return { ready: false, reason: 'shutting down' };
    if (this.plugins.size === 0) return { ready: false, reason: 'no GPU or NVSwitch on a VFIO driver found yet' };
    for (const plugin of this.plugins.values()) {
      const name = plugin.resourceName;
      if (!plugin.server.serving) return { ready: false, reason: `${name}: not serving on its socket` };
      if (!plugin.registered) {
        const why = plugin.lastError ? `: ${plugin.lastError}` : '';
        return { ready: false, reason: `${name}: not registered with the kubelet yet${why}` };
      }
      if (plugin.server.streamCount === 0) {
        return { ready: false, reason: `${name}: registered, but the kubelet has no ListAndWatch stream open` };
      }
    }
    return { ready: true };
  }

  resources(): ResourceStatus[] {
    return [...this.plugins.values()].map((plugin) => {
      const devices = [...plugin.server.currentDevices.values()];
      const healthy = devices.filter((d) => d.health === 'Healthy').length;
      return {
        resourceName: plugin.resourceName,
        socket: plugin.server.socketName,
        serving: plugin.server.serving,
        registered: plugin.registered,
        registrations: plugin.registrations,
        streams: plugin.server.streamCount,
        healthy,
        unhealthy: devices.length - healthy,
        ...(plugin.lastError === undefined ? {} : { lastError: plugin.lastError }),
      };
    });
  }

  /** The advertised devices now, per resource. */
  devices(): DeviceState {
    return this.state;
  }

  /**
   * The CC topology rule in force now: cc-manager's mode record is checked at each allocation (read
   * again when its stamp changed), so a mode applied between two allocations governs the second. The
   * rule is computed again only when the mode or the devices changed; a new rule is logged once.
   */
  topologyRule(): TopologyRule {
    const cc = readNodeCc(this.options.sysfs, () => this.ccRecord.read());
    const memo = this.ruleMemo;
    if (memo && memo.devices === this.state && memo.hidden === this.hiddenNvswitches && sameNodeCc(memo.cc, cc)) {
      return memo.rule;
    }
    const devices = [...this.state.values()].flatMap((byId) => [...byId.values()]);
    const rule = topologyRule(cc, devices, this.hiddenNvswitches);
    this.ruleMemo = { cc, devices: this.state, hidden: this.hiddenNvswitches, rule };
    const said = `${rule.summary}\u0000${cc.problem ?? ''}`;
    if (said !== this.lastRule) {
      this.lastRule = said;
      const { logger } = this.options;
      if (cc.problem) logger.warn({ event: 'cc.mode.unreadable', problem: cc.problem }, cc.problem);
      logger.info({ event: 'cc.rule', rule: rule.summary, state: rule.state, arch: rule.arch }, rule.summary);
    }
    return rule;
  }

  private topologyCheck(): TopologyCheck {
    const { logger, settings } = this.options;
    return {
      rule: this.topologyRule(),
      policy: settings.ccTopology,
      warn: (error) =>
        logger.warn(
          { event: 'allocate.topology-warning', err: error },
          `allocating anyway (--cc-topology warn): ${error.message}`,
        ),
    };
  }

  // ---- discovery --------------------------------------------------------------------------------

  private scheduleScan(): void {
    if (this.scanScheduled || this.stopping) return;
    this.scanScheduled = true;
    // setImmediate: the events of one change (a group's nodes, a bind) arrive together; one scan serves them all.
    setImmediate(() => {
      this.scanScheduled = false;
      void this.enqueue(() => this.scan('change'));
    });
  }

  private async scan(reason: string): Promise<void> {
    const { sysfs, settings, logger } = this.options;
    // dev/vfio/devices appears with the first cdev; what happened in it before its watch is unknown.
    if (reason !== 'start' && this.watches?.refresh().some((dir) => dir !== DEVICE_PLUGIN_DIR)) {
      this.scanner.invalidate();
    }
    const inventory = this.scanner.observe(
      sysfs,
      { ...settings, pciIds: this.pciIds },
      reason === 'change' ? 'events' : 'full',
    );
    this.reportInventory(inventory);
    const next = nextDeviceState(this.state, inventory);
    if (reason === 'start') this.reportStart(next);
    for (const change of diffDeviceState(this.state, next)) {
      if (reason === 'start' && change.change === 'added') continue; // said per resource above
      const level = change.change === 'unhealthy' ? 'warn' : 'info';
      logger[level](
        { event: `device.${change.change}`, resource: change.resourceName, id: change.id, reason: change.reason },
        `${change.resourceName} device ${change.id} ${change.change}${change.reason ? `: ${change.reason}` : ''}`,
      );
    }
    this.state = next;
    await this.record.write(next);
    const added: ResourcePlugin[] = [];
    for (const [resourceName, devices] of next) {
      let plugin = this.plugins.get(resourceName);
      if (plugin === undefined) {
        plugin = this.addPlugin(resourceName);
        added.push(plugin);
      }
      plugin.server.update(devices);
    }
    // New resources are served (and start registering) side by side: start-up time does not grow with them.
    await Promise.all(added.map((plugin) => this.serve(plugin, reason === 'start' ? 'start' : 'new resource')));
  }

  /** One line per resource at start-up (a node may have hundreds of devices); changes later get one line each. */
  private reportStart(state: DeviceState): void {
    for (const [resourceName, devices] of state) {
      const ids = [...devices.keys()];
      const healthy = [...devices.values()].filter((d) => d.health === 'Healthy').length;
      this.options.logger.info(
        { event: 'resource.discovered', resource: resourceName, ids, healthy },
        `${resourceName}: ${ids.length} device(s), ${healthy} healthy: ${ids.join(', ')}`,
      );
    }
  }

  private reportInventory(inventory: Inventory): void {
    const { logger } = this.options;
    if (inventory.model !== this.lastModel) {
      this.lastModel = inventory.model;
      const { deviceModel } = this.options.settings;
      logger.info(
        { event: 'vfio.model', model: inventory.model, deviceModel },
        `host VFIO model ${inventory.model}; each device's node by --vfio-device-model ${deviceModel}`,
      );
    }
    // Said once per change, not at every resync: why a GPU is not advertised is the first thing asked.
    this.hiddenNvswitches = hiddenNvswitches(inventory.skipped);
    const skipped = JSON.stringify(inventory.skipped);
    if (skipped !== this.lastSkipped) {
      this.lastSkipped = skipped;
      for (const s of inventory.skipped) {
        logger.info(
          { event: 'device.not-advertised', device: s.address, pciId: s.pciId, reason: s.reason },
          `${s.address} (${s.type}) is not advertised: ${s.reason}`,
        );
      }
    }
    const problems = JSON.stringify(inventory.problems.map((p) => p.message));
    if (problems === this.lastProblems) return;
    this.lastProblems = problems;
    for (const problem of inventory.problems) {
      logger.warn({ event: 'discovery.problem', err: problem }, problem.message);
    }
  }

  private addPlugin(resourceName: string): ResourcePlugin {
    const { sysfs, logger, settings, stopGraceMs, registration } = this.options;
    const socketName = socketNameFor(resourceName);
    const server = new ResourceServer({
      resourceName,
      socketName,
      socketRelPath: `${DEVICE_PLUGIN_DIR}/${socketName}`,
      sysfs,
      logger,
      cdiDevices: settings.cdiDevices,
      counters: this.counters,
      stopGraceMs,
      topology: () => this.topologyCheck(),
    });
    const plugin = new ResourcePlugin({
      server,
      register: (input, signal) => registerOnce(sysfs, input, registration.timeoutMs, signal),
      kubeletStamp: () => sysfs.stamp(KUBELET_SOCKET_PATH),
      settings: registration,
      wakeup: this.wakeup,
      logger,
      counters: this.counters,
    });
    this.plugins.set(resourceName, plugin);
    return plugin;
  }

  /** Serve before Register (the kubelet dials back inside Register); a failure is retried at the next resync. */
  private async serve(plugin: ResourcePlugin, reason: string): Promise<void> {
    try {
      await plugin.server.start();
    } catch (error) {
      this.options.logger.error(
        { event: 'plugin.serve-failed', resource: plugin.resourceName, err: error },
        `cannot serve ${plugin.resourceName}; retrying at the next resync`,
      );
      return;
    }
    plugin.register(reason);
  }

  // ---- periodic resync -------------------------------------------------------------------------

  private resync(): void {
    this.ccRecord.refresh();
    void this.enqueue(async () => {
      await this.scan('resync');
      await this.ensureServing();
    });
  }

  /** What the watches may have missed: a lost socket, a registration that ended, a stream that never came. */
  private async ensureServing(): Promise<void> {
    const now = Date.now();
    for (const plugin of this.plugins.values()) {
      const name = plugin.resourceName;
      if (!plugin.server.serving) {
        await this.serve(plugin, 'resync');
        continue;
      }
      if (!plugin.server.socketPresent()) {
        await this.restartPlugin(plugin, 'socket removed');
        continue;
      }
      if (!plugin.registered && !plugin.registering) plugin.register('resync');
      if (plugin.registered && plugin.server.streamCount === 0) {
        const since = this.streamless.get(name) ?? now;
        this.streamless.set(name, since);
        if (now - since >= this.options.streamlessMs) {
          this.streamless.delete(name);
          plugin.register('no ListAndWatch stream from the kubelet');
        }
      } else this.streamless.delete(name);
    }
  }

  // ---- kubelet restarts ------------------------------------------------------------------------

  private onKubeletDirEvent(name: string | null): void {
    if (name === KUBELET_SOCKET || name === null) this.kubeletSocketEvent = true;
    else if (![...this.plugins.values()].some((p) => p.server.socketName === name)) return;
    if (this.kubeletCheckScheduled || this.stopping) return;
    this.kubeletCheckScheduled = true;
    setImmediate(() => {
      this.kubeletCheckScheduled = false;
      void this.enqueue(() => this.checkKubelet());
    });
  }

  /**
   * The two restart signals, taken together: `kubelet.sock` created anew (re-register every
   * resource) and our own socket removed (serve again, then register). Our own restarts also remove
   * and create our sockets; by the time this runs (queued after them) those sockets exist again.
   */
  private async checkKubelet(): Promise<void> {
    const kubeletRestarted = this.kubeletSocketEvent && this.options.sysfs.kindOf(KUBELET_SOCKET_PATH) !== undefined;
    this.kubeletSocketEvent = false;
    if (kubeletRestarted) {
      this.counters.kubeletRestarts++;
      this.options.logger.info({ event: 'kubelet.restart-detected' }, 'kubelet.sock was created: registering again');
    }
    for (const plugin of this.plugins.values()) {
      if (!plugin.server.serving) continue;
      if (!plugin.server.socketPresent()) {
        if (!kubeletRestarted) this.counters.socketRestarts++;
        await this.restartPlugin(plugin, kubeletRestarted ? KUBELET_RESTARTED : 'socket removed');
      } else if (kubeletRestarted) plugin.register('kubelet restarted', { keepCurrent: true });
    }
    if (kubeletRestarted) this.wakeup.wake();
  }

  private async restartPlugin(plugin: ResourcePlugin, reason: string): Promise<void> {
    this.options.logger.info(
      { event: 'plugin.restart', resource: plugin.resourceName, reason },
      `serving ${plugin.resourceName} again: ${reason}`,
    );
    try {
      await plugin.restart(reason, { kubeletGone: reason === KUBELET_RESTARTED });
    } catch (error) {
      this.options.logger.error(
        { event: 'plugin.serve-failed', resource: plugin.resourceName, err: error },
        `cannot serve ${plugin.resourceName} again; retrying at the next resync`,
      );
    }
  }

  // ---- plumbing --------------------------------------------------------------------------------

  private enqueue(work: () => Promise<void>): Promise<void> {
    const run = async () => {
      if (this.stopping) return;
      try {
        await work();
      } catch (error) {
        this.options.logger.error(
          { event: 'plugin.error', err: error },
          'device plugin step failed; retried at the next resync',
        );
      }
    };
    this.queue = this.queue.then(run);
    return this.queue;
  }
}
