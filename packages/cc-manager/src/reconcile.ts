import { performance } from 'node:perf_hooks';
import type { Logger } from '@gpucc/daemon';
import type { KubeNode, LabelChanges, NodeClient, NodeEvent } from '@gpucc/daemon/kube';
import type { ReconcileOutcome } from '@gpucc/daemon/runtime';
import {
  CC_MANAGER_READY_MARKER,
  CC_MODES,
  type CcMode,
  type GpuccError,
  type HostRoot,
  messageOf,
  type PciAddress,
  writeCcNodeState,
} from '@gpucc/hal';
import { type ApplyReport, applyPlan, forgetApplied, type PhaseTiming } from './apply.js';
import type { CcBackend, DeviceModes } from './backend/backend.js';
import type { CapabilityTable } from './capability.js';
import { type DefaultMode, resolveDesired } from './desired.js';
import {
  CC_MODE_LABEL,
  CC_MODE_STATE_LABEL,
  CC_READY_STATE_LABEL,
  type ModeState,
  READY_STATE_SWITCHING,
  stateLabels,
} from './labels.js';
import { recordModes } from './modes-record.js';
import { observeHost, readModes } from './observe.js';
import {
  OPERATOR_OPERAND_LABELS,
  type OperandLabels,
  pausePatch,
  pausesDevicePlugin,
  restorePatch,
  waitForOperands,
} from './operands.js';
import { type DevicePlan, type Plan, planSwitch, ppcieRefusal, toSwitch } from './plan.js';

/**
 * What GPU Operator's sandbox validator waits for (`CC_READINESS_FILE`,
 * docs/facts/cc-mode.md#desired-mode-and-defaults), under the host root.
 */
export const READY_MARKER = CC_MANAGER_READY_MARKER;

export interface ReconcilerOptions {
  sysfs: HostRoot;
  backend: CcBackend;
  capability: CapabilityTable;
  logger: Logger;
  maxParallel: number;
  client: NodeClient;
  defaultMode: DefaultMode;
  evictOperands: boolean;
  /** The labels that select the operands paused around a switch (the overlay's, deploy/README.md); default the GPU Operator's. */
  operandLabels?: OperandLabels;
  operandWaitMs: number;
  operandSocketPrefix: string;
  delay: (ms: number, signal: AbortSignal) => Promise<void>;
}

/**
 * One level-triggered reconcile of `cc-manager run`: read the node's label, decide the mode, read the
 * devices, and switch what differs (operands paused around it), then write the state labels, the
 * Events and the readiness marker. Converged: no patch, no event, no tool call but the query.
 */
export function createReconciler(options: ReconcilerOptions): (signal: AbortSignal) => Promise<ReconcileOutcome> {
  const { sysfs, backend, capability, logger, client } = options;
  const operandLabels = options.operandLabels ?? OPERATOR_OPERAND_LABELS;
  // Events about conditions that persist (a bad label, a refused mode) are emitted once per message.
  const announced = new Map<string, string>();
  // The modes last read per device: what a device a VM holds keeps showing (it is never queried then).
  const lastModes = new Map<PciAddress, DeviceModes>();

  async function event(e: NodeEvent, onceKey?: string): Promise<void> {
    if (onceKey !== undefined) {
      if (announced.get(onceKey) === e.message) return;
      announced.set(onceKey, e.message);
    }
    try {
      await client.createEvent(e);
    } catch (error) {
      // An event is for people; its loss must not fail or repeat a switch.
      logger.warn(
        { event: 'kube.event.failed', reason: e.reason, err: error },
        `could not post event ${e.reason}: ${messageOf(error)}`,
      );
    }
  }

  /** Patches only the labels that differ; returns the node as it is afterwards. */
  async function patch(node: KubeNode, wanted: LabelChanges): Promise<KubeNode> {
    const changes = Object.fromEntries(Object.entries(wanted).filter(([k, v]) => node.labels[k] !== (v ?? undefined)));
    if (Object.keys(changes).length === 0) return node;
    return (await client.patchLabels(changes)) ?? node;
  }

  /**
   * The mode record the device plugin follows (the node part of the hal's CC_MODE_RECORD_FILE): the state as the labels say
   * it, and while a switch runs the mode it goes to.
   */
  async function record(state: ModeState | 'unknown', switchingTo?: CcMode): Promise<void> {
    const since = new Date().toISOString();
    await writeCcNodeState(sysfs, {
      state,
      since,
      ...(switchingTo === undefined ? {} : { switching: { from: state, to: switchingTo, since } }),
    });
  }

  async function writeState(node: KubeNode, state: ModeState): Promise<KubeNode> {
    // The record first: it says what the devices are in now, even if the API server is away.
    await record(state);
    const after = await patch(node, stateLabels(state));
    if (after !== node)
      logger.info({ event: 'cc.state', state, ready: stateLabels(state)[CC_READY_STATE_LABEL] }, `node state ${state}`);
    return after;
  }

  async function marker(converged: boolean): Promise<void> {
    if (converged) await sysfs.writeFileAtomic(READY_MARKER, '', 0o644);
    else await sysfs.removeFile(READY_MARKER);
  }

  /** Operands left paused (by a crash, or a failed restore): restored before anything else is decided. */
  async function restoreLeftovers(node: KubeNode): Promise<KubeNode> {
    const restore = restorePatch(node.labels, operandLabels);
    if (Object.keys(restore).length === 0) return node;
    logger.info({ event: 'cc.operands.restore', labels: restore }, 'restoring operands left paused');
    return patch(node, restore);
  }

  async function fail(node: KubeNode, reason: string, e: NodeEvent, onceKey?: string): Promise<ReconcileOutcome> {
    await writeState(node, 'failed');
    await marker(false);
    await event(e, onceKey);
    return { ok: false, reason };
  }

  return async function reconcile(signal: AbortSignal): Promise<ReconcileOutcome> {
    const started = performance.now();
    let node = await client.getNode();
    const host = observeHost(sysfs, capability);
    const label = node.labels[CC_MODE_LABEL];
    const desired = resolveDesired(label, options.defaultMode, host.tee);

    if (!desired.ok) {
      node = await restoreLeftovers(node);
      const message = `label ${CC_MODE_LABEL}=${JSON.stringify(desired.value)} is not a CC mode; allowed: ${CC_MODES.join(', ')} (or no label for the default, ${options.defaultMode}). Nothing was changed.`;
      logger.warn({ event: 'cc.label.invalid', value: desired.value, err: desired.error }, message);
      return fail(node, message, { type: 'Warning', reason: 'InvalidCcMode', message }, 'label');
    }
    announced.delete('label');
    if (desired.warning) {
      logger.warn({ event: 'cc.mode.no-tee', mode: desired.mode, source: desired.source }, desired.warning);
      await event({ type: 'Warning', reason: 'CcModeWithoutTee', message: desired.warning }, 'tee');
    }
    const mode = desired.mode;

    const refusal = mode === 'ppcie' ? ppcieRefusal(host.devices) : undefined;
    if (refusal) {
      node = await restoreLeftovers(node);
      const message = `mode ppcie refused: ${refusal.message}. ${refusal.hint}. Nothing was changed.`;
      logger.warn({ event: 'cc.mode.refused', mode, err: refusal }, message);
      return fail(node, refusal.message, { type: 'Warning', reason: 'CcModeRefused', message }, 'refusal');
    }
    announced.delete('refusal');

    const queryStarted = performance.now();
    const observation = await readModes(host, backend, signal, lastModes);
    for (const d of observation.devices) if (d.modes && !d.heldBy) lastModes.set(d.address, d.modes);
    const query: PhaseTiming = { phase: 'query', devices: host.devices.length, ms: performance.now() - queryStarted };
    await recordModes(
      sysfs,
      logger,
      new Map(observation.devices.flatMap((d) => (d.modes ? [[d.address, d.modes] as const] : []))),
      mode,
      observation.devices.map((d) => d.address),
    );
    const plan = planSwitch(mode, observation);
    const skipped = plan.devices.filter((d) => d.decision === 'skipped');
    if (skipped.length > 0) {
      const message = `${skipped.length} GPU(s) without a CC mode left as they are: ${skipped.map((d) => `${d.address} (${d.name})`).join(', ')}`;
      logger.warn({ event: 'cc.device.skipped', devices: skipped.map((d) => d.address) }, message);
      await event({ type: 'Warning', reason: 'CcModeDeviceSkipped', message }, `skipped:${mode}`);
    }
    const blocked = plan.devices.filter((d) => d.decision === 'refused' || d.decision === 'unreadable');
    const moving = toSwitch(plan);
    const capable = plan.devices.some((d) => d.expect.cc !== undefined || d.expect.ppcie !== undefined);

    if (moving.length === 0) {
      await forgetApplied(sysfs, plan);
      node = await restoreLeftovers(node);
      if (blocked.length > 0) {
        const message = `mode ${mode} not reached: ${describeProblems(blocked)}`;
        return fail(node, message, { type: 'Warning', reason: 'CcModeSwitchFailed', message }, `blocked:${mode}`);
      }
      announced.delete(`blocked:${mode}`);
      // A node without a single CC-capable device is in no CC mode whatever the label asks.
      const state: ModeState = capable ? mode : 'off';
      if (!capable && mode !== 'off') {
        await event(
          {
            type: 'Warning',
            reason: 'NoCcCapableDevices',
            message: `mode ${mode} asked, but no GPU of this node has a CC mode: the node stays off`,
          },
          'none',
        );
      }
      await writeState(node, state);
      await marker(true);
      return { ok: true, reason: `converged: ${state}`, details: { mode: state, switched: 0 } };
    }

    return switchNode(node, plan, moving, blocked, signal, started, query);
  };

  async function switchNode(
    initial: KubeNode,
    plan: Plan,
    moving: DevicePlan[],
    blocked: DevicePlan[],
    signal: AbortSignal,
    started: number,
    query: PhaseTiming,
  ): Promise<ReconcileOutcome> {
    let node = initial;
    const mode = plan.mode;
    const what = countDevices(moving);
    const was = node.labels[CC_MODE_STATE_LABEL] ?? 'unset';
    logger.info(
      { event: 'cc.switch.start', mode, devices: moving.map((d) => d.address), was },
      `switching ${what} to ${mode}`,
    );
    await event({
      type: 'Normal',
      reason: 'CcModeSwitchStarted',
      message: `switching ${what} to CC mode ${mode} (${CC_MODE_LABEL}=${node.labels[CC_MODE_LABEL] ?? `unset, default ${options.defaultMode}`}); the node was ${was}`,
    });
    await marker(false);
    // The device plugin makes no allocation under a mode about to change.
    const before = node.labels[CC_MODE_STATE_LABEL] === undefined ? 'unknown' : stateOf(node);
    await record(before, mode);
    // No Kata runtime class may schedule onto GPUs that are resetting.
    node = await patch(node, { [CC_READY_STATE_LABEL]: READY_STATE_SWITCHING });

    if (options.evictOperands) {
      const pause = pausePatch(node.labels, operandLabels);
      if (Object.keys(pause).length > 0) {
        try {
          node = await patch(node, pause);
        } catch (error) {
          // Upstream's rule: a failed pause aborts the switch before any device is touched.
          const message = `could not pause the GPU operands, so no device was touched: ${messageOf(error)}`;
          await event({ type: 'Warning', reason: 'CcModeSwitchFailed', message });
          throw error;
        }
        logger.info({ event: 'cc.operands.paused', labels: pause }, 'operands paused');
        if (pausesDevicePlugin(pause)) {
          const wait = await waitForOperands(sysfs, {
            prefix: options.operandSocketPrefix,
            timeoutMs: options.operandWaitMs,
            signal,
            delay: options.delay,
          });
          if (wait.timedOut) {
            const message = `device plugin sockets still present after ${options.operandWaitMs} ms: ${wait.remaining.join(', ')}; switching anyway`;
            logger.warn({ event: 'cc.operands.wait-timeout', remaining: wait.remaining }, message);
            await event({ type: 'Warning', reason: 'CcOperandsStillRunning', message });
          } else logger.info({ event: 'cc.operands.gone', waitedMs: wait.waitedMs }, 'device plugins stopped');
        }
      }
    }

    if (signal.aborted) {
      // Stopping before any device was touched: put the operands back, change nothing else.
      node = await restoreLeftovers(node);
      await patch(node, stateLabels(stateOf(node)));
      await record(stateOf(node));
      return { ok: false, reason: 'stopped before the switch began; nothing was changed' };
    }

    const report = await applyPlan(plan, { backend, sysfs, logger, maxParallel: options.maxParallel });
    try {
      node = await restoreLeftovers(node);
    } catch (error) {
      logger.warn(
        { event: 'cc.operands.restore-failed', err: error },
        `operands not restored yet: ${messageOf(error)}`,
      );
    }
    const phases = [query, ...report.phases].map((p) => ({ ...p, ms: Math.round(p.ms) }));
    const toolMs = phases.reduce((sum, p) => sum + p.ms, 0);
    const durationMs = Math.round(performance.now() - started);
    const details = {
      mode,
      switched: count(report, 'switched'),
      failed: report.results.filter(isProblem).length,
      toolMs,
      durationMs,
      phases,
    };
    if (report.ok && blocked.length === 0) {
      await writeState(node, mode);
      await marker(true);
      logger.info({ event: 'cc.switch.done', ...details }, `${what} switched to ${mode}`);
      await event({
        type: 'Normal',
        reason: 'CcModeSwitched',
        message: `${what} switched to CC mode ${mode} in ${(durationMs / 1000).toFixed(1)} s`,
      });
      return { ok: true, reason: `switched to ${mode}`, details };
    }
    const problems = describeProblems(
      [...blocked, ...plan.devices.filter((d) => report.results.some((r) => r.address === d.address && isProblem(r)))],
      report,
    );
    const message = `switch to CC mode ${mode} failed: ${problems}; retried with backoff`;
    await writeState(node, 'failed');
    logger.warn({ event: 'cc.switch.failed', ...details }, message);
    await event({ type: 'Warning', reason: 'CcModeSwitchFailed', message });
    return { ok: false, reason: message, details };
  }
}

const isProblem = (r: ApplyReport['results'][number]) =>
  r.outcome === 'failed' || r.outcome === 'refused' || r.outcome === 'unreadable';
const count = (report: ApplyReport, outcome: string) => report.results.filter((r) => r.outcome === outcome).length;

function stateOf(node: KubeNode): ModeState {
  const value = node.labels[CC_MODE_STATE_LABEL];
  return value === 'on' || value === 'off' || value === 'devtools' || value === 'ppcie' ? value : 'failed';
}

function countDevices(devices: readonly DevicePlan[]): string {
  const gpus = devices.filter((d) => d.kind === 'gpu').length;
  const switches = devices.length - gpus;
  return [gpus ? `${gpus} GPU(s)` : '', switches ? `${switches} NVSwitch(es)` : ''].filter(Boolean).join(' and ');
}

/** Per device, the error's words (the tool's own, for a failed call), for Events and /readyz. */
function describeProblems(devices: readonly DevicePlan[], report?: ApplyReport): string {
  const seen = new Set<string>();
  const parts: string[] = [];
  for (const d of devices) {
    if (seen.has(d.address)) continue;
    seen.add(d.address);
    const error: GpuccError | undefined = report?.results.find((r) => r.address === d.address)?.error ?? d.error;
    parts.push(`${d.address}: ${error ? `${error.code}: ${error.message}` : d.reason}`);
  }
  return parts.join('; ');
}
