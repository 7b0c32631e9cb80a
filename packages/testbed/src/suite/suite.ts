import path from 'node:path';
import { GpuccError, localFs, messageOf, type Service, type ServiceExit, startService } from '@gpucc/hal';
import { createNode, installFakeTools, SIM_DIR, stopKernel, type ToolSettings, writeToolSettings } from '@gpucc/sim';
import { freePort } from '../fixtures/ports.js';
import { convergenceProblems, observeNode, type SuiteSnapshot } from './observe.js';
import { deployLabel, OPERANDS, type Operand, operandArgs } from './operands.js';
import {
  type ApiServerPeer,
  FakeApiServer,
  FakeKubelet,
  type KubeletPeer,
  type KubeletView,
  type PeerContext,
  type PodAllocation,
} from './peers.js';
import { Timeline, type TimelineEntry } from './timeline.js';

/**
 * The whole gpucc suite on one simulated node, as separate processes: the fake Kubernetes API server
 * and the fake kubelet of `gpucc-sim`, and the four operands in their `run` modes. The suite plays
 * the parts of the cluster around them: the DaemonSet controller (an operand runs while its
 * `nvidia.com/gpu.deploy.<operand>` label is "true", so cc-manager's pause really stops it) and the
 * kubelet's restart policy (an operand that dies is started again).
 */
export interface SuiteOptions {
  /** A new or empty directory: the simulated node is laid out here. */
  root: string;
  profile?: string;
  /** The bin scripts of the four operands and of gpucc-sim, run with this Node.js. */
  binaries: Record<Operand | 'gpucc-sim', string>;
  /** Labels on the node before any operand starts (e.g. the first nvidia.com/cc.mode). */
  initialLabels?: Record<string, string>;
  /** Latencies of the fake CC tools (real hardware: start 150, set 150, reset 1700 ms). */
  toolLatency?: Partial<ToolSettings>;
  /** Called with each timeline entry as it is added (live output). */
  onEntry?: (entry: TimelineEntry) => void;
  /** Pause before an operand that died is started again (the kubelet backs off from 10 s). */
  restartDelayMs?: number;
  /**
   * The API server and kubelet around the operands: the fakes of gpucc-sim (default), or real ones
   * made from the suite's context (packages/testbed/src/real: `realPeers(bin)`).
   */
  peers?: (ctx: PeerContext) => Promise<Peers> | Peers;
}

export interface Peers {
  apiServer: ApiServerPeer;
  kubelet: KubeletPeer;
}

export const SUITE_DIR = `${SIM_DIR}/suite`;
const TICK_MS = 100;
const FLUSH_DELAY_MS = 400;

interface OperandProcess {
  service: Service | undefined;
  /** Set while the supervisor itself stops it (label paused, suite stopping). */
  stopping: Promise<ServiceExit> | undefined;
  startedAt: number;
  starts: number;
  exits: ServiceExit[];
  /** Earliest time of the next start after a crash. */
  notBefore: number;
  logOffset: number;
  metricsPort: number;
}

export class Suite {
  readonly timeline: Timeline;
  readonly nodeName = 'gpucc-sim-node';
  private readonly operands = new Map<Operand, OperandProcess>();
  private peers: Peers | undefined;
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private stopped = false;
  private readonly printed = new Set<TimelineEntry>();

  private constructor(
    readonly root: string,
    private readonly options: SuiteOptions,
  ) {
    this.timeline = new Timeline(Date.now());
  }

  /** Lays out the node, starts the API server and the kubelet, then lets the controller start the operands. */
  static async start(options: SuiteOptions): Promise<Suite> {
    const profile = options.profile ?? 'hgx-h100-8';
    const { root } = createNode(options.root, profile, {}, installFakeTools);
    const suite = new Suite(root, options);
    try {
      localFs.makeDir(suite.path(SUITE_DIR));
      if (options.toolLatency) writeToolSettings(root, options.toolLatency);
      const peers = await (options.peers ?? fakePeers)(suite.peerContext());
      suite.peers = peers;
      // First on the timeline: which peers are real.
      suite.note('suite', peers.apiServer.describe);
      suite.note('suite', peers.kubelet.describe);
      suite.note('suite', `simulated ${profile} node at ${root}`);
      await peers.apiServer.start();
      await peers.kubelet.start();
      for (const operand of OPERANDS) {
        suite.operands.set(operand, {
          service: undefined,
          stopping: undefined,
          startedAt: 0,
          starts: 0,
          exits: [],
          notBefore: 0,
          logOffset: 0,
          metricsPort: await freePort(),
        });
      }
      // What the GPU Operator does when it deploys the suite: select the node for each DaemonSet.
      await suite.label({
        ...Object.fromEntries(OPERANDS.map((o) => [deployLabel(o), 'true'])),
        ...options.initialLabels,
      });
      suite.timer = setInterval(() => void suite.tick(), TICK_MS);
      await suite.tick();
      return suite;
    } catch (error) {
      await suite.stop();
      throw error;
    }
  }

  path(rel: string): string {
    return path.join(this.root, rel);
  }

  logFile(name: string): string {
    return this.path(`${SUITE_DIR}/${name}.log`);
  }

  metricsUrl(operand: Operand): string {
    return `http://127.0.0.1:${this.state(operand).metricsPort}`;
  }

  kubeconfig(): string {
    return this.peer().apiServer.kubeconfig();
  }

  note(actor: string, text: string): TimelineEntry {
    const entry = this.timeline.add(actor, text);
    this.flush();
    return entry;
  }

  // ---- the node object ------------------------------------------------------------------------

  /** One merge of these labels into the node (null removes), as `gpucc-sim label` or kubectl does. */
  label(changes: Record<string, string | null>): Promise<void> {
    return this.peer().apiServer.setLabels(changes);
  }

  labels(): Promise<Record<string, string>> {
    return this.peer().apiServer.labels();
  }

  // ---- processes ----------------------------------------------------------------------------

  /** Running and not being stopped: a kill then lands on a working operand, not on one shutting down for a pause. */
  isRunning(operand: Operand): boolean {
    const p = this.state(operand);
    // Not while the supervisor stops it (a pause): a kill then would race the SIGTERM's own exit.
    return p.service !== undefined && p.stopping === undefined && p.service.exit() === undefined;
  }

  /** How often the operand was started, and how each run ended. */
  history(operand: Operand): { starts: number; exits: readonly ServiceExit[] } {
    const p = this.state(operand);
    return { starts: p.starts, exits: p.exits };
  }

  /** Sends a signal to the operand's processes (its container); the controller restarts it if it dies. */
  kill(operand: Operand, signal: NodeJS.Signals = 'SIGKILL'): boolean {
    const service = this.state(operand).service;
    const sent = service?.signal(signal) ?? false;
    if (sent) this.note('suite', `${signal} to ${operand} (pid ${service?.pid})`);
    return sent;
  }

  async stopApiServer(): Promise<void> {
    this.note('suite', 'API server stopped');
    await this.peer().apiServer.stop();
  }

  /** Starts the API server again on the address of the kubeconfig (its state survives). */
  startApiServer(): Promise<void> {
    return this.peer().apiServer.start();
  }

  // ---- the kubelet ------------------------------------------------------------------------------

  kubelet(): Promise<KubeletView> {
    return this.peer().kubelet.state();
  }

  /** Admission of a pod asking for `count` devices of `resource`. */
  allocate(resource: string, count: number): Promise<PodAllocation> {
    return this.peer().kubelet.allocate(resource, count);
  }

  /** The pods holding `resource`'s devices end: the kubelet gives the devices back. */
  release(resource: string): Promise<void> {
    return this.peer().kubelet.release(resource);
  }

  /** The kubelet restarts: streams close, its sockets are deleted and it listens again. */
  async restartKubelet(): Promise<void> {
    this.note('suite', 'kubelet restarted (sockets deleted)');
    await this.peer().kubelet.restart();
  }

  // ---- the node as a whole --------------------------------------------------------------------------

  async snapshot(): Promise<SuiteSnapshot> {
    const kubelet = await this.kubelet().catch(() => undefined);
    return observeNode(this.root, await this.labels(), kubelet);
  }

  /** Waits until the node is converged on `mode` with nothing lost (see convergenceProblems). */
  async converged(mode: string, what: string, timeoutMs = 60_000): Promise<number> {
    let last: string[] = [];
    try {
      const { ms } = await this.waitFor(
        what,
        async () => {
          last = convergenceProblems(await this.snapshot(), mode, this.root);
          return last.length === 0;
        },
        { timeoutMs },
      );
      return ms;
    } catch (error) {
      throw new GpuccError('ERR_GPUCC_SIM_SUITE_TIMEOUT', `${what}: ${last.slice(0, 5).join('; ')}`, {
        hint: `see the logs in ${this.path(SUITE_DIR)}`,
        cause: error,
        details: { problems: last },
      });
    }
  }

  // ---- waiting ------------------------------------------------------------------------------------

  /**
   * Polls `probe` until it returns something other than false/undefined; the time it took goes on
   * the timeline. Past the deadline: ERR_GPUCC_SIM_SUITE_TIMEOUT with the last probe error.
   */
  async waitFor<T>(
    what: string,
    probe: () => T | false | undefined | Promise<T | false | undefined>,
    options: { timeoutMs?: number; quiet?: boolean; service?: Service } = {},
  ): Promise<{ value: T; ms: number }> {
    const started = Date.now();
    const deadline = started + (options.timeoutMs ?? 30_000);
    let lastError: unknown;
    for (;;) {
      try {
        const value = await probe();
        if (value !== false && value !== undefined) {
          const ms = Date.now() - started;
          if (!options.quiet) this.note('suite', `ok: ${what} (${(ms / 1000).toFixed(2)} s)`);
          return { value, ms };
        }
      } catch (error) {
        lastError = error;
      }
      const exit = options.service?.exit();
      if (exit !== undefined || Date.now() > deadline) {
        const why = exit ? `the process exited (${exit.signal ?? exit.code})` : `not within ${Date.now() - started} ms`;
        throw new GpuccError('ERR_GPUCC_SIM_SUITE_TIMEOUT', `${what}: ${why}`, {
          hint: `see the logs in ${this.path(SUITE_DIR)}`,
          ...(lastError !== undefined ? { cause: lastError, details: { lastError: messageOf(lastError) } } : {}),
        });
      }
      await sleep(50);
    }
  }

  /** Reads the operands' logs up to now and hands every entry to onEntry (before a summary is printed). */
  settle(): void {
    this.readLogs();
    this.flush(true);
  }

  // ---- stopping -----------------------------------------------------------------------------------

  /** Stops every process (operands first, SIGTERM) and returns how each operand's last run ended. */
  async stop(): Promise<Partial<Record<Operand, ServiceExit>>> {
    if (this.stopped) return {};
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    while (this.ticking) await sleep(10);
    const exits: Partial<Record<Operand, ServiceExit>> = {};
    await Promise.all(
      [...this.operands].map(async ([operand, p]) => {
        if (!p.service) return;
        const exit = p.stopping ? await p.stopping : await p.service.stop();
        if (!p.exits.includes(exit)) p.exits.push(exit);
        exits[operand] = exit;
      }),
    );
    await this.peers?.kubelet.stop();
    await this.peers?.apiServer.close();
    await stopKernel(this.root); // the node's kernel process, which the operands' first write started
    this.readLogs();
    this.flush(true);
    return exits;
  }

  // ---- the controller -------------------------------------------------------------------------------

  /** One pass of the DaemonSet controller and the restart policy, then the operands' new log lines. */
  private async tick(): Promise<void> {
    if (this.ticking || this.stopped) return;
    this.ticking = true;
    try {
      // Unread while the store is being rewritten or the server is away: the next tick reads it.
      const labels = await this.labels().catch(() => undefined);
      if (labels) for (const operand of OPERANDS) this.control(operand, labels[deployLabel(operand)] === 'true');
      this.readLogs();
      this.flush();
    } finally {
      this.ticking = false;
    }
  }

  private control(operand: Operand, selected: boolean): void {
    const p = this.state(operand);
    const exit = p.service?.exit();
    if (p.service && exit !== undefined && !p.stopping) {
      // It died on its own (kill -9, crash): the kubelet starts the container again.
      p.exits.push(exit);
      p.service = undefined;
      p.notBefore = Date.now() + (this.options.restartDelayMs ?? 200);
      this.note('suite', `${operand} exited (${exit.signal ?? `code ${exit.code}`})`);
    }
    if (selected && !p.service && Date.now() >= p.notBefore) {
      const ctx = {
        root: this.root,
        nodeName: this.nodeName,
        metricsPort: p.metricsPort,
        kubeconfig: this.kubeconfig(),
      };
      p.service = this.startBinary(operand, operandArgs(operand, ctx), operand);
      p.starts += 1;
      p.startedAt = Date.now();
      this.note('suite', `started ${operand} (pid ${p.service.pid})`);
    } else if (!selected && p.service && !p.stopping) {
      const service = p.service;
      this.note('suite', `stopping ${operand}: its label is ${deployLabel(operand)}≠true`);
      p.stopping = service.stop().then((result) => {
        p.exits.push(result);
        p.service = undefined;
        p.stopping = undefined;
        this.note('suite', `${operand} stopped (${result.signal ?? `exit ${result.code}`})`);
        return result;
      });
    }
  }

  private startBinary(binary: Operand | 'gpucc-sim', args: string[], logName: string): Service {
    const script = this.options.binaries[binary];
    return startService({ command: process.execPath, args: [script, ...args], logFile: this.logFile(logName) });
  }

  /** The operands' log lines written since the last call (only what was appended is read: --keep runs long). */
  private readLogs(): void {
    for (const [operand, p] of this.operands) {
      let bytes: Buffer;
      try {
        bytes = localFs.readFrom(this.logFile(operand), p.logOffset);
      } catch {
        continue;
      }
      const end = bytes.lastIndexOf(0x0a) + 1; // whole lines only; a partial one is read again next time
      if (end === 0) continue;
      const text = bytes.subarray(0, end).toString('utf8');
      p.logOffset += end;
      for (const line of text.split('\n')) if (line) this.timeline.addLogLine(operand, line);
    }
  }

  /**
   * Hands new entries to onEntry once they are settled: log lines arrive a tick late and a run of one
   * event is folded into its first line, so only entries older than FLUSH_DELAY_MS go out (all at stop).
   */
  private flush(final = false): void {
    if (!this.options.onEntry) return;
    const settled = this.timeline.elapsed() - FLUSH_DELAY_MS;
    for (const entry of this.timeline.entries) {
      if (!final && entry.atMs > settled) break;
      if (this.printed.has(entry)) continue;
      this.printed.add(entry);
      this.options.onEntry(entry);
    }
  }

  private peerContext(): PeerContext {
    return {
      root: this.root,
      nodeName: this.nodeName,
      startSim: (args, logName) => this.startBinary('gpucc-sim', args, logName),
      waitFor: async (what, probe, service) => {
        await this.waitFor(what, probe, { timeoutMs: 15_000, quiet: true, ...(service ? { service } : {}) });
      },
      note: (actor, text) => void this.note(actor, text),
    };
  }

  private peer(): Peers {
    if (!this.peers) throw new Error('the suite has not started its API server and kubelet');
    return this.peers;
  }

  private state(operand: Operand): OperandProcess {
    const p = this.operands.get(operand);
    if (!p) throw new Error(`the suite has not started ${operand}`);
    return p;
  }
}

/** gpucc-sim's API server and kubelet. */
async function fakePeers(ctx: PeerContext): Promise<Peers> {
  return { apiServer: new FakeApiServer(ctx, await freePort()), kubelet: new FakeKubelet(ctx) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
