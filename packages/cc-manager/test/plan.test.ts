import { existsSync, linkSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import type { PciAddress } from '@gpucc/hal';
import { simNode } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import {
  archOf,
  capabilityTable,
  DEFAULT_CAPABILITY,
  isCcCapable,
  isPpcieCapable,
  parseIdRanges,
} from '../src/capability.js';
import { resolveDesired } from '../src/desired.js';
import { readyStateFor } from '../src/labels.js';
import {
  DEVICE_PLUGIN_DIR,
  OPERATOR_OPERAND_LABELS,
  parseOperandLabelKeys,
  pausedValue,
  pausePatch,
  pausesDevicePlugin,
  restoredValue,
  restorePatch,
  waitForOperands,
} from '../src/operands.js';
import { type DeviceObservation, type Observation, planSwitch } from '../src/plan.js';

const gpu = (bus: number, over: Partial<DeviceObservation> = {}): DeviceObservation => ({
  address: `0000:${bus.toString(16).padStart(2, '0')}:00.0` as PciAddress,
  kind: 'gpu',
  deviceId: 0x2330,
  name: 'H100',
  arch: 'hopper',
  ccCapable: true,
  ppcieCapable: true,
  driver: 'vfio-pci',
  modes: { cc: 'off', ppcie: 'off' },
  ...over,
});
const nvswitch = (bus: number, over: Partial<DeviceObservation> = {}): DeviceObservation => ({
  ...gpu(bus),
  kind: 'nvswitch',
  deviceId: 0x22a3,
  name: 'NVSwitch_gen3',
  ccCapable: false,
  modes: { ppcie: 'off' },
  ...over,
});
const node = (devices: DeviceObservation[], over: Partial<Observation> = {}): Observation => ({
  tee: 'sev-snp',
  backend: 'gpu-admin-tools',
  canSwitch: true,
  devices,
  ...over,
});
const steps = (o: Observation, mode: Parameters<typeof planSwitch>[0]) =>
  planSwitch(mode, o).devices.map((d) => [d.address, d.decision, d.steps.map((s) => [s.phase, s.step])]);

describe('capability by device-ID range (docs/facts/cc-mode.md#capability-by-device-id)', () => {
  it.each([
    [0x2330, 'hopper', true, true],
    [0x2335, 'hopper', true, true],
    [0x2901, 'blackwell', true, false],
    [0x2bb5, 'blackwell', true, false],
    [0x1eb1, 'older', false, false],
    [0x20b0, 'older', false, false],
  ])('GPU %s: %s, CC %s, PPCIe %s', (id, arch, cc, ppcie) => {
    expect(archOf(id)).toBe(arch);
    expect(isCcCapable('gpu', id, DEFAULT_CAPABILITY)).toBe(cc);
    expect(isPpcieCapable('gpu', id, DEFAULT_CAPABILITY)).toBe(ppcie);
  });

  it('NVSwitch gen3 has PPCIe, LR10 has not; a flag replaces the lists', () => {
    expect(isPpcieCapable('nvswitch', 0x22a3, DEFAULT_CAPABILITY)).toBe(true);
    expect(isPpcieCapable('nvswitch', 0x1af1, DEFAULT_CAPABILITY)).toBe(false);
    const table = capabilityTable({ cc: '0x1eb1, 0x2300-0x2301' });
    expect(isCcCapable('gpu', 0x1eb1, table)).toBe(true);
    expect(isCcCapable('gpu', 0x2330, table)).toBe(false);
    expect(parseIdRanges('2330', '--x')).toEqual([{ first: 0x2330, last: 0x2330 }]);
    expect(() => parseIdRanges('0x2330-0x2000', '--cc-capable-ids')).toThrow(/ends before it starts/);
    expect(() => parseIdRanges('h100', '--cc-capable-ids')).toThrow(/ERR|invalid PCI device ID/);
  });
});

describe('desired mode (docs/facts/cc-mode.md#desired-mode-and-defaults)', () => {
  it('label wins; absent or empty means the default; no TEE forces the default (not a label) to off', () => {
    expect(resolveDesired('devtools', 'on', 'tdx')).toMatchObject({ ok: true, mode: 'devtools', source: 'label' });
    expect(resolveDesired(undefined, 'on', 'sev-snp')).toMatchObject({ ok: true, mode: 'on', source: 'default' });
    expect(resolveDesired('', 'devtools', 'tdx')).toMatchObject({ ok: true, mode: 'devtools' });
    expect(resolveDesired(undefined, 'on', 'none')).toEqual({
      ok: true,
      mode: 'off',
      source: 'default',
      warning: 'Overriding default CC mode: on to off because the host does not support CC',
    });
    expect(resolveDesired('on', 'off', 'none')).toMatchObject({
      ok: true,
      mode: 'on',
      warning: expect.stringMatching(/without SEV-SNP or TDX/),
    });
  });

  it('an unknown value is an error naming it (upstream B6): no case folding', () => {
    const desired = resolveDesired('On', 'on', 'tdx');
    expect(desired).toMatchObject({ ok: false, value: 'On' });
    if (!desired.ok) expect(desired.error.hint).toMatch(/use "on"/);
  });

  it('ready state: on/ppcie true, off false, devtools its own value, failed empty', () => {
    expect(['on', 'ppcie', 'off', 'devtools', 'failed'].map((s) => readyStateFor(s as 'on'))).toEqual([
      'true',
      'true',
      'false',
      'devtools',
      '',
    ]);
  });
});

describe('operand pause and restore mappings (docs/facts/cc-mode.md#operand-pause-protocol)', () => {
  it.each<[string | undefined, string | undefined, string]>([
    [undefined, undefined, 'absent stays absent'],
    ['', undefined, '"" stays'],
    ['false', undefined, 'false stays'],
    ['true', 'paused-for-cc-mode-change', 'true is paused'],
    ['paused-for-cc-mode-change', undefined, 'already paused'],
    ['custom_paused-for-cc-mode-change', undefined, 'already paused with a value'],
    ['custom', 'custom_paused-for-cc-mode-change', 'other values keep theirs'],
  ])('pause %j → %j (%s)', (current, paused) => {
    expect(pausedValue(current)).toBe(paused);
  });

  it.each<[string, string | undefined]>([
    ['paused-for-cc-mode-change', 'true'],
    ['custom_paused-for-cc-mode-change', 'custom'],
    ['_paused-for-cc-mode-change', ''],
    ['false', undefined],
    ['true', undefined],
  ])('restore %j → %j', (current, restored) => {
    expect(restoredValue(current)).toBe(restored);
  });

  it('patches name only the operand labels that change, kata-sandbox-device-plugin included (B4)', () => {
    const labels = {
      'nvidia.com/gpu.deploy.vfio-manager': 'true',
      'nvidia.com/gpu.deploy.kata-sandbox-device-plugin': 'true',
      'nvidia.com/gpu.deploy.sandbox-device-plugin': 'false',
      'nvidia.com/gpu.deploy.cc-manager': 'true',
      'nvidia.com/cc.mode': 'on',
    };
    const pause = pausePatch(labels);
    expect(pause).toEqual({
      'nvidia.com/gpu.deploy.vfio-manager': 'paused-for-cc-mode-change',
      'nvidia.com/gpu.deploy.kata-sandbox-device-plugin': 'paused-for-cc-mode-change',
    });
    expect(restorePatch({ ...labels, ...pause })).toEqual({
      'nvidia.com/gpu.deploy.vfio-manager': 'true',
      'nvidia.com/gpu.deploy.kata-sandbox-device-plugin': 'true',
    });
    expect(restorePatch(labels)).toEqual({});
  });

  it('standalone labels (absent means deployed): an absent label is paused too, and restored to "true"', () => {
    const standalone = {
      keys: ['gpucc.io/deploy.vfio-manager', 'gpucc.io/deploy.sandbox-device-plugin'],
      absent: 'deployed' as const,
    };
    const labels = { 'gpucc.io/deploy.vfio-manager': 'false', 'nvidia.com/gpu.deploy.vfio-manager': 'true' };
    const pause = pausePatch(labels, standalone);
    // "false" is the admin's opt-out and stays; the Operator's label is not ours to touch here
    expect(pause).toEqual({ 'gpucc.io/deploy.sandbox-device-plugin': 'paused-for-cc-mode-change' });
    expect(pausesDevicePlugin(pause)).toBe(true);
    expect(restorePatch({ ...labels, ...pause }, standalone)).toEqual({
      'gpucc.io/deploy.sandbox-device-plugin': 'true',
    });
    // the Operator's labels: absent stays absent, so no operand the Operator did not deploy is created
    expect(pausePatch({}, OPERATOR_OPERAND_LABELS)).toEqual({});
  });

  it.each([
    ['gpucc.io/deploy.vfio-manager,gpucc.io/deploy.sandbox-device-plugin', 2],
    [' nvidia.com/gpu.deploy.vfio-manager , nvidia.com/gpu.deploy.vfio-manager ', 1],
    ['vfio-manager', 1],
    ['', undefined],
    ['gpucc.io/deploy.vfio-manager=true', undefined],
    ['Gpucc.IO/x', undefined],
  ])('--operand-labels %j: %s keys', (text, count) => {
    expect(parseOperandLabelKeys(text)?.length).toBe(count);
  });
});

describe('plan', () => {
  it('a converged node plans nothing', () => {
    const o = node([gpu(0x13, { modes: { cc: 'on', ppcie: 'off' } }), nvswitch(0x07)]);
    expect(steps(o, 'on')).toEqual([
      ['0000:13:00.0', 'converged', []],
      ['0000:07:00.0', 'converged', []],
    ]);
  });

  it('ppcie: every GPU gets CC off and PPCIe on in one reset, every NVSwitch PPCIe on', () => {
    const o = node([gpu(0x13, { modes: { cc: 'on', ppcie: 'off' } }), nvswitch(0x07)]);
    expect(steps(o, 'ppcie')).toEqual([
      ['0000:13:00.0', 'switch', [[2, { cc: 'off', ppcie: 'on' }]]],
      ['0000:07:00.0', 'switch', [[2, { ppcie: 'on' }]]],
    ]);
  });

  it('ppcie → off turns PPCIe off first, though the CC register already reads off (B5); → on then sets CC', () => {
    const o = node([gpu(0x13, { modes: { cc: 'off', ppcie: 'on' } }), nvswitch(0x07, { modes: { ppcie: 'on' } })]);
    expect(steps(o, 'off')).toEqual([
      ['0000:13:00.0', 'switch', [[1, { ppcie: 'off' }]]],
      ['0000:07:00.0', 'switch', [[1, { ppcie: 'off' }]]],
    ]);
    expect(steps(o, 'on')[0]).toEqual([
      '0000:13:00.0',
      'switch',
      [
        [1, { ppcie: 'off' }],
        [2, { cc: 'on' }],
      ],
    ]);
  });

  it('knobs set earlier but never applied count as a difference: a later reset would apply them', () => {
    const o = node([gpu(0x13, { modes: { cc: 'off', ppcie: 'off' }, pending: { cc: 'on', since: 'then' } })]);
    const plan = planSwitch('off', o);
    expect(plan.devices[0]).toMatchObject({ decision: 'switch', steps: [{ phase: 2, step: { cc: 'off' } }] });
    expect(plan.devices[0]!.reason).toMatch(/holds knobs set earlier/);
  });

  it('refuses ppcie for the whole node when one device lacks it, naming them (B200, LR10)', () => {
    const b200 = gpu(0x13, {
      deviceId: 0x2901,
      name: 'B200',
      arch: 'blackwell',
      ppcieCapable: false,
      modes: { cc: 'off' },
    });
    const plan = planSwitch('ppcie', node([b200, gpu(0x23)]));
    expect(plan.refusal?.code).toBe('ERR_GPUCC_CC_NOT_CAPABLE');
    expect(plan.refusal?.message).toMatch(/0000:13:00\.0 \(gpu B200 0x2901\)/);
    expect(plan.refusal?.hint).toMatch(/Blackwell uses NVLink encryption/);
  });

  it('a GPU without CC is skipped and reported for on, nothing for off; a host driver or a read-only backend refuses', () => {
    const old = gpu(0x01, {
      deviceId: 0x1eb1,
      name: '?',
      arch: 'older',
      ccCapable: false,
      ppcieCapable: false,
      modes: {},
    });
    const held = gpu(0x13, { driver: 'nvidia' });
    const plan = planSwitch('on', node([old, held, gpu(0x23, { driver: undefined })]));
    expect(plan.devices.map((d) => [d.decision, d.error?.code])).toEqual([
      ['skipped', 'ERR_GPUCC_CC_NOT_CAPABLE'],
      ['refused', 'ERR_GPUCC_DEVICE_HELD_BY_HOST_DRIVER'],
      ['switch', undefined],
    ]);
    expect(planSwitch('off', node([old])).devices[0]!.decision).toBe('converged');
    const readOnly = planSwitch('on', node([gpu(0x23)], { backend: 'nvidia-smi', canSwitch: false }));
    expect(readOnly.devices[0]!.error?.code).toBe('ERR_GPUCC_CC_BACKEND_CANNOT_SWITCH');
  });

  it('a device whose modes could not be read is unreadable, not guessed', () => {
    const plan = planSwitch('on', node([gpu(0x13, { modes: undefined })]));
    expect(plan.devices[0]!.decision).toBe('unreadable');
  });
});

describe('waiting for the paused device plugins', () => {
  /** A device plugin's socket with a server listening on it; close() removes it as a stopping plugin does. */
  async function listen(file: string): Promise<Server> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(file, resolve));
    return server;
  }
  const closeServer = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));

  it('ends once their sockets are gone, or at the deadline naming those left; other sockets do not count', async () => {
    const { root, sysfs } = simNode('h100-pcie-1');
    const dir = path.join(root, DEVICE_PLUGIN_DIR);
    const servers = await Promise.all(
      ['kubelet.sock', 'sandbox-pgpu.sock', 'nvidia-gpu.sock'].map((name) => listen(path.join(dir, name))),
    );
    let clock = 0;
    const waits: number[] = [];
    const gone = await waitForOperands(sysfs, {
      prefix: 'sandbox-',
      timeoutMs: 10_000,
      signal: new AbortController().signal,
      now: () => clock,
      delay: async (ms) => {
        waits.push(ms);
        clock += ms;
        if (waits.length === 2) await closeServer(servers[1]!);
      },
    });
    expect(gone).toEqual({ timedOut: false, waitedMs: 1_000, remaining: [] });
    const plugin = await listen(path.join(dir, 'sandbox-pgpu.sock'));
    clock = 0;
    const stuck = await waitForOperands(sysfs, {
      prefix: 'sandbox-',
      timeoutMs: 1_200,
      signal: new AbortController().signal,
      now: () => clock,
      delay: async (ms) => {
        clock += ms;
      },
    });
    expect(stuck).toEqual({ timedOut: true, waitedMs: 1_200, remaining: ['sandbox-pgpu.sock'] });
    await Promise.all([plugin, servers[0]!, servers[2]!].map(closeServer));
  });

  it('a socket left by a plugin killed with SIGKILL (nobody listening) counts as gone at once', async () => {
    const { root, sysfs } = simNode('h100-pcie-1');
    const dir = path.join(root, DEVICE_PLUGIN_DIR);
    // A second name for the socket outlives the server, as the file of a killed process does.
    const server = await listen(path.join(dir, 'sandbox-live.sock'));
    linkSync(path.join(dir, 'sandbox-live.sock'), path.join(dir, 'sandbox-pgpu.sock'));
    await closeServer(server);
    expect(existsSync(path.join(dir, 'sandbox-pgpu.sock'))).toBe(true);
    const waited = await waitForOperands(sysfs, {
      prefix: 'sandbox-',
      timeoutMs: 10_000,
      signal: new AbortController().signal,
      delay: async () => {
        throw new Error('waited for a dead socket');
      },
    });
    expect(waited.remaining).toEqual([]);
    expect(waited.timedOut).toBe(false);
  });
});
