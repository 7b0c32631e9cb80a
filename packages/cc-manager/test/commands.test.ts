import type { ProgressEvent } from '@gpucc/daemon';
import { readCcModes } from '@gpucc/hal';
import { injectFault, openSimulatedHost } from '@gpucc/sim';
import { bindAll } from '@gpucc/testbed/fixtures';
import { simNode } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import { setMode, status } from '../src/commands.js';
import { readIntentRecord } from '../src/state.js';
import { contextFor, resets } from './helpers.js';

const H200_GPUS = ['0000:23:00.0', '0000:43:00.0'];

describe('set on simulated nodes (gpu-admin-tools backend, the node’s fake tool)', () => {
  it('every GPU set, reset once and verified; a dry run and a second run change nothing', async () => {
    const { root, sysfs } = simNode('iommufd-h200-2');
    await bindAll(sysfs);
    const engine = contextFor(root, sysfs);
    const dry = await setMode(engine, { mode: 'on', dryRun: true });
    expect(dry.plan.devices.map((d) => d.decision)).toEqual(['switch', 'switch']);
    expect(resets(root)).toEqual([]);
    const result = await setMode(engine, { mode: 'on', dryRun: false });
    expect(result.report?.ok).toBe(true);
    expect(result.report?.results.map((r) => r.outcome)).toEqual(['switched', 'switched']);
    expect(resets(root).sort()).toEqual(H200_GPUS);
    const report = await status(engine);
    expect(report).toMatchObject({ tee: 'tdx', backend: 'gpu-admin-tools', mode: 'on' });
    expect(report.devices.every((d) => d.ccMode === 'on' && d.ppcieMode === 'off' && d.pending === null)).toBe(true);

    const again = await setMode(engine, { mode: 'on', dryRun: false });
    expect(again.report?.results.map((r) => r.outcome)).toEqual(['unchanged', 'unchanged']);
    expect(resets(root)).toHaveLength(2);
    // What gpucc status shows: the verified modes, recorded for others (cc-manager alone runs the tools).
    expect(readCcModes(sysfs)).toEqual(
      Object.fromEntries(H200_GPUS.map((a) => [a, { cc: 'on', ppcie: 'off', desired: 'on' }])),
    );
  });

  it('tells a progress sink of each device as its reset ends and as it is verified', async () => {
    const { root, sysfs } = simNode('iommufd-h200-2');
    await bindAll(sysfs);
    const events: ProgressEvent[] = [];
    let steps = 0;
    const result = await setMode(contextFor(root, sysfs), {
      mode: 'on',
      dryRun: false,
      progress: (n) => {
        steps = n;
        return (e) => events.push(e);
      },
    });
    expect(result.report?.ok).toBe(true);
    expect(steps).toBe(4); // a reset and a verification for each of the two GPUs
    expect(events.map((e) => [e.device, e.what, e.ok]).sort()).toEqual(
      H200_GPUS.flatMap((a) => [
        [a, 'cc on set, reset', true],
        [a, 'verified: cc on, ppcie off', true],
      ]).sort(),
    );
    for (const e of events.filter((e) => e.what.endsWith('reset'))) expect(e.ms).toBeGreaterThan(0);
  });

  it('--device narrows the switch to those devices', async () => {
    const { root, sysfs } = simNode('iommufd-h200-2');
    await bindAll(sysfs);
    const result = await setMode(contextFor(root, sysfs), {
      mode: 'devtools',
      devices: [H200_GPUS[1]!],
      dryRun: false,
    });
    expect(result.report?.results.map((r) => [r.address, r.outcome])).toEqual([[H200_GPUS[1], 'switched']]);
    expect(resets(root)).toEqual([H200_GPUS[1]]);
  });

  it('refuses devices a host driver owns (no tool call, no reset) and ppcie on B200 as a whole', async () => {
    const { root, sysfs } = simNode('hgx-b200-8');
    const engine = contextFor(root, sysfs);
    const held = await setMode(engine, { mode: 'on', dryRun: false });
    expect(held.report?.ok).toBe(false);
    expect(
      held.report?.results.every(
        (r) => r.outcome === 'refused' && r.error?.code === 'ERR_GPUCC_DEVICE_HELD_BY_HOST_DRIVER',
      ),
    ).toBe(true);
    await bindAll(sysfs);
    const ppcie = await setMode(engine, { mode: 'ppcie', dryRun: false });
    expect(ppcie.report?.refusal?.code).toBe('ERR_GPUCC_CC_NOT_CAPABLE');
    expect(resets(root)).toEqual([]);
  });

  it('a reset that fails: that device failed with the tool’s words, its knobs recorded as pending; the rest switched; a rerun converges', async () => {
    const { root, sysfs } = simNode('iommufd-h200-2');
    await bindAll(sysfs);
    await injectFault(root, { kind: 'reset-error', device: '0000:23:00.0', times: 1 });
    const engine = contextFor(root, sysfs);
    const first = await setMode(engine, { mode: 'devtools', dryRun: false });
    const bad = first.report!.results.find((r) => r.address === '0000:23:00.0')!;
    expect(bad.outcome).toBe('failed');
    expect(bad.error?.code).toBe('ERR_GPUCC_TOOL_FAILED');
    expect(bad.error?.message).toMatch(
      /--gpu-bdf=0000:23:00\.0 --set-cc-mode=devtools .*exited with code 1: OSError: \[Errno 5\] Input\/output error/,
    );
    expect(first.report!.results.filter((r) => r.outcome === 'switched')).toHaveLength(1);
    expect(readIntentRecord(sysfs).pending['0000:23:00.0']).toMatchObject({ cc: 'devtools' });
    const report = await status(engine);
    expect(report.mode).toBe('mixed');
    expect(report.devices.find((d) => d.address === '0000:23:00.0')?.pending).toMatchObject({ cc: 'devtools' });

    const second = await setMode(engine, { mode: 'devtools', dryRun: false });
    expect(second.report?.ok).toBe(true);
    expect(readIntentRecord(sysfs).pending).toEqual({});
  });

  it('a mode the device does not take after its reset: the tool’s own check fails it (cc-stuck)', async () => {
    const { root, sysfs } = simNode('h100-pcie-1');
    await bindAll(sysfs);
    await injectFault(root, { kind: 'cc-stuck', device: '0000:41:00.0', times: 1 });
    const result = await setMode(contextFor(root, sysfs), { mode: 'on', dryRun: false });
    expect(result.report?.results[0]).toMatchObject({ outcome: 'failed' });
    expect(result.report?.results[0]?.error?.message).toMatch(/failed to switch to CC mode on, current mode is off/);
  });

  it.each([
    ['tool-hang', 'ERR_GPUCC_TOOL_TIMEOUT', /did not finish within 3000 ms/],
    ['tool-error', 'ERR_GPUCC_TOOL_FAILED', /FspRpcError: .*FSP RPC failed, response timeout/],
    ['tool-garbage', 'ERR_GPUCC_TOOL_OUTPUT_UNRECOGNIZED', /does not recognise: "%%% gpucc-sim tool-garbage/],
  ] as const)(
    '%s on one GPU: that GPU fails with %s and the tool’s words, the others switch',
    async (kind, code, words) => {
      const { root, sysfs } = simNode('iommufd-h200-2');
      await bindAll(sysfs);
      const [first, second] = ['0000:23:00.0', '0000:43:00.0'];
      await injectFault(root, { kind, device: first! });
      // 3 s: the hung call's deadline, and room for the other GPU's calls (Node.js processes of the
      // fake tool) on a loaded CI machine, where 1 s once failed the GPU that should switch.
      const result = await setMode(contextFor(root, sysfs, { timeoutMs: 3_000 }), { mode: 'on', dryRun: false });
      const bad = result.report!.results.find((r) => r.address === first)!;
      expect(bad.outcome === 'unreadable' || bad.outcome === 'failed').toBe(true);
      expect(bad.error?.code).toBe(code);
      expect(bad.error?.message).toMatch(words);
      expect(result.report!.results.find((r) => r.address === second)?.outcome).toBe('switched');
      expect(result.report!.ok).toBe(false);
    },
  );

  it('workstation-mixed: the GPU without CC is skipped and reported, the H100 is switched', async () => {
    const { root, sysfs } = simNode('workstation-mixed');
    const sim = openSimulatedHost(root);
    await sim.write('sys/bus/pci/drivers/nvidia/unbind', '0000:42:00.0'); // as vfio-manager's preStop leaves it
    const result = await setMode(contextFor(root, sysfs), { mode: 'on', dryRun: false });
    expect(result.report!.results.map((r) => [r.address, r.outcome])).toEqual([
      ['0000:01:00.0', 'skipped'],
      ['0000:42:00.0', 'switched'],
    ]);
    expect(result.report!.results[0]!.error?.code).toBe('ERR_GPUCC_CC_NOT_CAPABLE');
    expect(result.report!.ok).toBe(true);
  });

  it('nvidia-smi backend: reads GPUs on the nvidia driver, says what it cannot read, and never switches', async () => {
    const { root, sysfs } = simNode('iommufd-h200-2');
    const sim = openSimulatedHost(root);
    await sim.write('sys/bus/pci/drivers/nvidia/unbind', H200_GPUS[1]!);
    const engine = contextFor(root, sysfs, { backend: 'nvidia-smi' });
    const report = await status(engine);
    expect(report).toMatchObject({ backend: 'nvidia-smi', canSwitch: false });
    const [onDriver, unbound] = report.devices;
    expect([onDriver?.ccMode, onDriver?.ppcieMode]).toEqual(['off', 'off']);
    expect(unbound?.error?.code).toBe('ERR_GPUCC_CC_QUERY_UNSUPPORTED');
    expect(unbound?.error?.message).toMatch(/through the NVIDIA driver only, and 0000:43:00\.0 is unbound/);
    const result = await setMode(engine, { mode: 'on', dryRun: false });
    expect(result.report?.results[0]?.error?.code).toBe('ERR_GPUCC_CC_BACKEND_CANNOT_SWITCH');
    expect(resets(root)).toEqual([]);
  });
});
