import type { Logger } from '@gpucc/daemon';
import { messageOf } from '@gpucc/hal';
import type { PluginCounters } from './metrics.js';
import {
  logRegistrationFailure,
  type RegisterRequestInput,
  type RegistrationSettings,
  retryUntilDone,
  type Wakeup,
} from './registration.js';
import { PLUGIN_OPTIONS, type ResourceServer } from './resource-server.js';

export interface ResourcePluginOptions {
  server: ResourceServer;
  /** One Register call (see registerOnce). */
  register: (input: RegisterRequestInput, signal: AbortSignal) => Promise<void>;
  /** kubelet.sock's stamp now (HostRoot.stamp): which kubelet a Register call reaches. */
  kubeletStamp: () => string | undefined;
  settings: RegistrationSettings;
  wakeup: Wakeup;
  logger: Logger;
  counters: PluginCounters;
}

/** The lifecycle of one resource: its server and its registration with the kubelet. */
export class ResourcePlugin {
  registered = false;
  registeredAt: number | undefined;
  lastError: string | undefined;
  registrations = 0;
  private loop: AbortController | undefined;
  /** The kubelet.sock that the attempt in flight dialled. */
  private dialled: string | undefined;
  private readonly log: Logger;

  constructor(private readonly options: ResourcePluginOptions) {
    this.log = options.logger.child({ resource: options.server.resourceName });
  }

  get server(): ResourceServer {
    return this.options.server;
  }

  get resourceName(): string {
    return this.options.server.resourceName;
  }

  /** Whether a registration loop is running now. */
  get registering(): boolean {
    return this.loop !== undefined;
  }

  /**
   * (Re)starts registering: an attempt in flight is abandoned, so the new kubelet gets a fresh one.
   * With `keepCurrent`, a registration that already reached the kubelet.sock there now (done, or in
   * flight) is kept instead: a second Register would make that kubelet drop the stream it opened and
   * dial us again.
   */
  register(reason: string, options: { keepCurrent?: boolean } = {}): void {
    const keep =
      options.keepCurrent === true &&
      (this.loop !== undefined || this.registered) &&
      this.dialled !== undefined &&
      this.dialled === this.options.kubeletStamp();
    if (keep) {
      this.log.debug(
        { event: 'kubelet.register-kept', reason },
        `not registering again (${reason}): this kubelet was already dialled`,
      );
      return;
    }
    this.loop?.abort();
    const controller = new AbortController();
    this.loop = controller;
    this.registered = false;
    const { server, counters, settings } = this.options;
    const input = { resourceName: server.resourceName, socketName: server.socketName, options: PLUGIN_OPTIONS };
    const started = performance.now();
    this.log.debug({ event: 'kubelet.register-start', reason }, `registering (${reason})`);
    void retryUntilDone({
      attempt: (signal) => {
        this.dialled = this.options.kubeletStamp();
        return this.options.register(input, signal);
      },
      backoff: settings.backoff,
      signal: controller.signal,
      wakeup: this.options.wakeup,
      onFailure: (error, failures, retryInMs) => {
        counters.count(counters.registrations, server.resourceName, false);
        this.lastError = messageOf(error);
        logRegistrationFailure(this.log, error, failures, retryInMs);
      },
    }).then((ok) => {
      if (this.loop !== controller) return; // superseded by a newer loop or stopped
      this.loop = undefined;
      if (!ok) return;
      this.registered = true;
      this.registeredAt = Date.now();
      this.lastError = undefined;
      this.registrations++;
      counters.count(counters.registrations, server.resourceName, true);
      const ms = Math.round(performance.now() - started);
      this.log.info(
        { event: 'kubelet.registered', socket: server.socketName, reason, ms },
        `registered ${server.resourceName} with the kubelet (${reason}, ${ms} ms)`,
      );
    });
  }

  /**
   * Serves again on a fresh socket, then registers: what a kubelet restart or a lost socket needs.
   * After a kubelet restart no call of the old kubelet is worth waiting for: its connections are
   * cut at once (the real device manager's would keep the server waiting out the whole grace otherwise,
   * docs/real-kubernetes.md).
   */
  async restart(reason: string, options: { kubeletGone: boolean } = { kubeletGone: false }): Promise<void> {
    this.abortRegistration();
    await this.server.stop({ emptyList: false, ...(options.kubeletGone ? { graceMs: 0 } : {}) });
    await this.server.start();
    this.register(reason);
  }

  /** Graceful stop: an empty list to every stream, streams ended, socket removed. */
  async stop(): Promise<void> {
    this.abortRegistration();
    await this.server.stop({ emptyList: true });
  }

  private abortRegistration(): void {
    this.loop?.abort();
    this.loop = undefined;
    this.registered = false;
  }
}
