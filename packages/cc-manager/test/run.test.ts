import path from 'node:path';
import { createNodeClient, loadKubeConfig } from '@gpucc/daemon/kube';
import { abortableDelay } from '@gpucc/daemon/runtime';
import { type CcNodeState, localFs, readCcNodeState } from '@gpucc/hal';
import {
  type ApiServer,
  injectFault,
  listEvents,
  nodeLabels,
  readHeldAccesses,
  readCcState as readSimCcState,
  releaseHolder,
  setLabels,
  startApiServer,
  vmHold,
} from '@gpucc/sim';
import { bindAll, silentLogger } from '@gpucc/testbed/fixtures';
import { simNode } from '@gpucc/testbed/vitest';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_CAPABILITY } from '../src/capability.js';
import { type Controller, startController } from '../src/controller.js';
import type { OperandLabels } from '../src/operands.js';
import { createReconciler, READY_MARKER } from '../src/reconcile.js';
import { B200_GPUS, backendFor, counted, H100_GPUS, NVSWITCHES, resets } from './helpers.js';

const MODE = 'nvidia.com/cc.mode';
const STATE = 'nvidia.com/cc.mode.state';
const READY = 'nvidia.com/cc.ready.state';
const RESYNC_MS = 600_000;
const OURS = /^nvidia\.com\/(cc\.mode\.state|cc\.ready\.state|gpu\.deploy\..+)$/;

const running: Array<{ stop: AbortController; controller: Controller; server: ApiServer }> = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    r.stop.abort();
    await r.controller.done;
    await r.server.close();
  }
});

/** `cc-manager run`'s controller in this process: real client, fake API server, the node's fake tools. */
async function startRun(
  profile: string,
  o: {
    labels?: Record<string, string | null>;
    nvswitches?: boolean;
    bind?: boolean;
    timeoutMs?: number;
    operandLabels?: OperandLabels;
  } = {},
) {
  const { root, sysfs } = simNode(profile);
  if (o.bind !== false) await bindAll(sysfs, { nvswitches: o.nvswitches ?? false });
  if (o.labels) setLabels(root, o.labels);
  const server = await startApiServer({ root });
  const backend = counted(backendFor(root, { timeoutMs: o.timeoutMs ?? 15_000 }));
  const logger = silentLogger();
  const client = createNodeClient({
    nodeName: server.nodeName,
    config: loadKubeConfig(server.kubeconfigPath),
    logger,
    component: 'cc-manager',
  });
  const stop = new AbortController();
  const reconcile = createReconciler({
    sysfs,
    backend,
    capability: DEFAULT_CAPABILITY,
    logger,
    maxParallel: 16,
    client,
    defaultMode: 'on',
    evictOperands: true,
    ...(o.operandLabels ? { operandLabels: o.operandLabels } : {}),
    operandWaitMs: 5_000,
    operandSocketPrefix: 'sandbox-',
    delay: async () => {},
  });
  // Retries come after 50 ms (the backoff's wait is injected), resyncs never: every reconcile here has a cause.
  const controller = startController({
    client,
    reconcile,
    resyncMs: RESYNC_MS,
    signal: stop.signal,
    logger,
    delay: (ms, signal) => abortableDelay(ms >= RESYNC_MS ? ms : Math.min(ms, 50), signal),
    watchTimeoutSeconds: 300,
  });
  running.push({ stop, controller, server });
  const labels = () => nodeLabels(root);
  const reasons = () => listEvents(root).map((e) => e.reason);
  /** Waits for the loop to be idle with the node's labels as asked. */
  const settled = async (state: string, runs = 1, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!(labels()[STATE] === state && !controller.loop.state.running && controller.loop.state.runs >= runs)) {
      if (Date.now() > deadline) {
        throw new Error(`state ${labels()[STATE]} not ${state}; events ${reasons().join(', ')}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const patches = () =>
    server.requests
      .filter((r) => r.method === 'PATCH')
      .map((r) => (r.body as { metadata: { labels: Record<string, string> } }).metadata.labels);
  return { root, sysfs, server, backend, controller, reconcile, labels, reasons, settled, patches };
}

describe('cc-manager run: labels, Events and operands a user sees', () => {
  it('hgx-b200-8: off → on → devtools → off', async () => {
    const run = await startRun('hgx-b200-8', { labels: { [MODE]: 'off' } });
    await run.settled('off');
    expect(run.labels()).toMatchObject({ [STATE]: 'off', [READY]: 'false' });
    expect(run.reasons()).toEqual([]);
    expect(localFs.exists(path.join(run.root, READY_MARKER))).toBe(true);

    const before = run.patches().length;
    setLabels(run.root, { [MODE]: 'on' });
    await run.settled('on', 2);
    expect(run.labels()).toMatchObject({
      [STATE]: 'on',
      [READY]: 'true',
      'nvidia.com/gpu.deploy.vfio-manager': 'true',
      'nvidia.com/gpu.deploy.kata-sandbox-device-plugin': 'true',
      'nvidia.com/gpu.deploy.sandbox-device-plugin': 'false',
    });
    // What the node went through: not ready for any runtime class, operands paused, restored, state.
    expect(run.patches().slice(before)).toEqual([
      { [READY]: '' },
      {
        'nvidia.com/gpu.deploy.vfio-manager': 'paused-for-cc-mode-change',
        'nvidia.com/gpu.deploy.sandbox-validator': 'paused-for-cc-mode-change',
        'nvidia.com/gpu.deploy.kata-sandbox-device-plugin': 'paused-for-cc-mode-change',
      },
      {
        'nvidia.com/gpu.deploy.vfio-manager': 'true',
        'nvidia.com/gpu.deploy.sandbox-validator': 'true',
        'nvidia.com/gpu.deploy.kata-sandbox-device-plugin': 'true',
      },
      { [STATE]: 'on', [READY]: 'true' },
    ]);
    expect(run.reasons()).toEqual(['CcModeSwitchStarted', 'CcModeSwitched']);
    expect(listEvents(run.root)[0]?.message).toMatch(
      /^switching 8 GPU\(s\) to CC mode on \(nvidia\.com\/cc\.mode=on\); the node was off$/,
    );
    expect(resets(run.root).sort()).toEqual(B200_GPUS);

    setLabels(run.root, { [MODE]: 'devtools' });
    await run.settled('devtools', 3);
    expect(run.labels()[READY]).toBe('devtools');
    setLabels(run.root, { [MODE]: 'off' });
    await run.settled('off', 4);
    expect(run.labels()[READY]).toBe('false');
    expect(run.reasons().filter((r) => r === 'CcModeSwitched')).toHaveLength(3);
    expect(resets(run.root)).toHaveLength(24);
    for (const request of run.server.requests.filter((r) => r.method === 'PATCH')) {
      expect(request.contentType).toMatch(/^application\/merge-patch\+json/);
      for (const key of Object.keys((request.body as { metadata: { labels: object } }).metadata.labels))
        expect(key).toMatch(OURS);
    }
    expect(run.server.requests.filter((r) => r.method === 'GET' && r.query.watch === 'true')).toHaveLength(1);
  });

  it('standalone labels (deploy/kubernetes/overlays/standalone): pauses and restores gpucc.io/deploy.*, leaves the Operator’s alone', async () => {
    const standalone: OperandLabels = {
      keys: ['gpucc.io/deploy.vfio-manager', 'gpucc.io/deploy.sandbox-device-plugin'],
      absent: 'deployed',
    };
    const run = await startRun('hgx-b200-8', { labels: { [MODE]: 'off' }, operandLabels: standalone });
    await run.settled('off');
    const operator = Object.fromEntries(
      Object.entries(run.labels()).filter(([k]) => k.startsWith('nvidia.com/gpu.deploy.')),
    );
    const before = run.patches().length;
    setLabels(run.root, { [MODE]: 'on' });
    await run.settled('on', 2);
    expect(run.patches().slice(before)).toEqual([
      { [READY]: '' },
      {
        'gpucc.io/deploy.vfio-manager': 'paused-for-cc-mode-change',
        'gpucc.io/deploy.sandbox-device-plugin': 'paused-for-cc-mode-change',
      },
      { 'gpucc.io/deploy.vfio-manager': 'true', 'gpucc.io/deploy.sandbox-device-plugin': 'true' },
      { [STATE]: 'on', [READY]: 'true' },
    ]);
    expect(run.labels()).toMatchObject(operator); // untouched
  });

  it('keeps the mode record the device plugin follows: the state, and the mode being applied while devices reset', async () => {
    const run = await startRun('hgx-h100-8', { labels: { [MODE]: 'off' } });
    await run.settled('off');
    expect(readCcNodeState(run.sysfs)).toMatchObject({ version: 1, state: 'off' });
    expect(readCcNodeState(run.sysfs)?.switching).toBeUndefined();
    const seen: Array<CcNodeState | undefined> = [];
    const apply = run.backend.apply.bind(run.backend);
    run.backend.apply = async (device, step) => {
      seen.push(readCcNodeState(run.sysfs));
      return apply(device, step);
    };
    setLabels(run.root, { [MODE]: 'on' });
    await run.settled('on', 2);
    expect(seen.length).toBe(8);
    expect(seen[0]).toMatchObject({ state: 'off', switching: { from: 'off', to: 'on' } });
    const after = readCcNodeState(run.sysfs);
    expect(after).toMatchObject({ version: 1, state: 'on' });
    expect(after?.switching).toBeUndefined();
  });

  it('hgx-h100-8: ppcie on the 8 GPUs and 4 NVSwitches, and back to off with PPCIe really off', async () => {
    const run = await startRun('hgx-h100-8', { labels: { [MODE]: 'ppcie' }, nvswitches: true });
    await run.settled('ppcie');
    expect(run.labels()[READY]).toBe('true');
    expect(listEvents(run.root).map((e) => e.message)[0]).toMatch(
      /^switching 8 GPU\(s\) and 4 NVSwitch\(es\) to CC mode ppcie/,
    );
    // What the devices hold now, as the simulated hardware has it (pending knobs included).
    const hardware = () => [...H100_GPUS, ...NVSWITCHES].map((d) => readSimCcState(run.root, d));
    expect(hardware().every((s) => s?.ppcie === 'on' && s.ppciePending === 'on' && s.cc === 'off')).toBe(true);

    setLabels(run.root, { [MODE]: 'off' });
    await run.settled('off', 2);
    expect(hardware().every((s) => s?.ppcie === 'off' && s.ppciePending === 'off' && s.cc === 'off')).toBe(true);
    expect(run.labels()[READY]).toBe('false');
  });

  it('refuses ppcie on hgx-b200-8: failed, an Event naming why, no operand paused, no tool run', async () => {
    const run = await startRun('hgx-b200-8', { labels: { [MODE]: 'ppcie' } });
    await run.settled('failed');
    expect(run.labels()).toMatchObject({
      [STATE]: 'failed',
      [READY]: '',
      'nvidia.com/gpu.deploy.vfio-manager': 'true',
    });
    const [event] = listEvents(run.root);
    expect(event).toMatchObject({ type: 'Warning', reason: 'CcModeRefused' });
    expect(event?.message).toMatch(
      /ppcie needs every GPU and NVSwitch to support Protected PCIe, and 8 do not: 0000:13:00\.0 \(gpu B200 0x2901\)/,
    );
    expect(event?.message).toMatch(/Blackwell uses NVLink encryption/);
    expect([run.backend.queries, run.backend.applies]).toEqual([0, 0]);
    expect(run.patches()).toEqual([{ [STATE]: 'failed', [READY]: '' }]);
    expect(localFs.exists(path.join(run.root, READY_MARKER))).toBe(false);
  });

  it('an unknown label value: failed, an Event naming it and the allowed ones, no operand paused, no tool run', async () => {
    const run = await startRun('iommufd-h200-2', { labels: { [MODE]: 'On' } });
    await run.settled('failed');
    expect(listEvents(run.root)).toMatchObject([
      {
        type: 'Warning',
        reason: 'InvalidCcMode',
        message:
          'label nvidia.com/cc.mode="On" is not a CC mode; allowed: on, off, devtools, ppcie (or no label for the default, on). Nothing was changed.',
      },
    ]);
    expect([run.backend.queries, run.backend.applies]).toEqual([0, 0]);
    expect(run.patches()).toEqual([{ [STATE]: 'failed', [READY]: '' }]);
    // fixing the label converges (the default mode here: on)
    setLabels(run.root, { [MODE]: null });
    await run.settled('on', 2);
  });

  it('a failed reset: failed with the tool’s words in the Event, then retried and converged without a label change', async () => {
    const run = await startRun('iommufd-h200-2', { labels: { [MODE]: 'on' } });
    await injectFault(run.root, { kind: 'reset-error', device: '0000:43:00.0', times: 1 });
    await run.settled('on', 2);
    expect(run.reasons()).toEqual([
      'CcModeSwitchStarted',
      'CcModeSwitchFailed',
      'CcModeSwitchStarted',
      'CcModeSwitched',
    ]);
    const failed = listEvents(run.root)[1]!;
    expect(failed.type).toBe('Warning');
    expect(failed.message).toMatch(
      /^switch to CC mode on failed: 0000:43:00\.0: ERR_GPUCC_TOOL_FAILED: .*--gpu-bdf=0000:43:00\.0 --set-cc-mode=on --reset-after-cc-mode-switch exited with code 1: OSError: \[Errno 5\] Input\/output error; retried with backoff$/,
    );
    expect(listEvents(run.root)[2]?.message).toMatch(/^switching 1 GPU\(s\) to CC mode on/);
    // the state went failed in between, and the second try switched only the device that failed
    expect(
      run
        .patches()
        .filter((p) => p[STATE])
        .map((p) => p[STATE]),
    ).toEqual(['failed', 'on']);
  });

  it('a tool that hangs: that GPU fails with the timeout in the Event; the retry converges', async () => {
    const run = await startRun('iommufd-h200-2', { labels: { [MODE]: 'devtools' }, timeoutMs: 800 });
    await injectFault(run.root, { kind: 'tool-hang', device: '0000:23:00.0', times: 2 });
    await run.settled('devtools', 2);
    const failed = listEvents(run.root).find((e) => e.reason === 'CcModeSwitchFailed');
    expect(failed?.message).toMatch(/0000:23:00\.0: ERR_GPUCC_TOOL_TIMEOUT: .*did not finish within 800 ms/);
  });

  it('relists on 410 Gone and acts on a label change it did not see as an event', async () => {
    const run = await startRun('iommufd-h200-2', { labels: { [MODE]: 'off' } });
    await run.settled('off');
    run.server.dropWatches();
    setLabels(run.root, { [MODE]: 'on' });
    run.server.compact();
    await run.settled('on', 2);
    const rvs = run.server.requests.filter((r) => r.query.watch === 'true').map((r) => r.query.resourceVersion);
    expect(rvs.length).toBeGreaterThanOrEqual(3); // the first watch, the resume that got 410, the one after the relist
  });

  it('a restart after a crash finds operands left paused and readiness cleared, and restores both', async () => {
    const run = await startRun('iommufd-h200-2', {
      labels: {
        [MODE]: 'off',
        [STATE]: 'off',
        [READY]: '',
        'nvidia.com/gpu.deploy.vfio-manager': 'paused-for-cc-mode-change',
        'nvidia.com/gpu.deploy.sandbox-validator': 'custom_paused-for-cc-mode-change',
      },
    });
    await run.settled('off');
    expect(run.labels()).toMatchObject({
      [READY]: 'false',
      'nvidia.com/gpu.deploy.vfio-manager': 'true',
      'nvidia.com/gpu.deploy.sandbox-validator': 'custom',
    });
    expect(run.backend.applies).toBe(0);
  });
});

describe('cc-manager run: GPUs a VM holds (issue 13 item 3)', () => {
  it('never queries, switches or resets a GPU a VM holds; the switch waits, names the holders, and goes on once they let go', async () => {
    const run = await startRun('hgx-b200-8', { labels: { [MODE]: 'off' } });
    await run.settled('off');
    const held = B200_GPUS.slice(0, 6);
    const pids = held.map((gpu) => vmHold(run.root, gpu));

    // An hour of resyncs at the default 60 s: each reads the two free GPUs, none the held six.
    const queries = run.backend.queries;
    for (let i = 0; i < 60; i++) expect((await run.reconcile(new AbortController().signal)).ok).toBe(true);
    expect(run.backend.queries - queries).toBe(60);
    expect(readHeldAccesses(run.root)).toEqual([]);

    const resetsBefore = resets(run.root).length;
    setLabels(run.root, { [MODE]: 'on' });
    await until(() => run.reasons().includes('CcModeSwitchFailed'), 'the refusal Event');
    const failed = listEvents(run.root).find((e) => e.reason === 'CcModeSwitchFailed')!;
    for (const [i, gpu] of held.entries())
      expect(failed.message).toContain(`qemu-system-x86_64 (pid ${pids[i]}) holds ${gpu}`);
    expect(resets(run.root).slice(resetsBefore).sort()).toEqual(B200_GPUS.slice(6)); // only the free ones
    expect(readHeldAccesses(run.root)).toEqual([]);

    for (const pid of pids) releaseHolder(run.root, pid);
    await run.settled('on');
    expect(resets(run.root).slice(resetsBefore).sort()).toEqual([...B200_GPUS.slice(6), ...held].sort());
  });
});

async function until(test: () => boolean, what: string, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`${what}: not reached in time`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
