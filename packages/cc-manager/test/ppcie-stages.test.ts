import { injectFault, openSimulatedHost, readHeldAccesses, vmHold } from '@gpucc/sim';
import { bindAll } from '@gpucc/testbed/fixtures';
import { simNode } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import { setMode, status } from '../src/commands.js';
import { readIntentRecord } from '../src/state.js';
import { contextFor, H100_GPUS, NVSWITCHES, resets } from './helpers.js';

const ALL = [...H100_GPUS, ...NVSWITCHES].sort();

/** An HGX H100 board (8 GPUs on VFIO, 4 NVSwitches unbound), switched with 4 tool calls at once. */
async function board(o: { nvswitchDriver?: boolean } = {}) {
  const { root, sysfs } = simNode('hgx-h100-8');
  await bindAll(sysfs);
  const sim = openSimulatedHost(root);
  if (!o.nvswitchDriver) for (const s of NVSWITCHES) await sim.write('sys/bus/pci/drivers/nvidia-nvswitch/unbind', s);
  return { root, sysfs, engine: { ...contextFor(root, sysfs), maxParallel: 4 } };
}

describe('ppcie in stages (issue 13 item 4): every device set before any is reset', () => {
  it('a set that fails on one of 12 devices with --max-parallel 4 resets none, puts the knobs back, and says which failed', async () => {
    const { root, sysfs, engine } = await board();
    const culprit = H100_GPUS[5]!;
    // The fault is armed for the culprit's set call (the observe query before it must read the node).
    const { set } = engine.backend;
    let armed = false;
    engine.backend.set = async (d, step) => {
      if (d.address === culprit && !armed) {
        armed = true;
        await injectFault(root, { kind: 'tool-error', device: culprit, times: 1 });
      }
      return set(d, step);
    };
    const result = await setMode(engine, { mode: 'ppcie', dryRun: false });

    expect(resets(root)).toEqual([]);
    const report = result.report!;
    expect(report.ok).toBe(false);
    expect(report.results.map((r) => [r.address, r.outcome]).sort()).toEqual(ALL.map((a) => [a, 'failed']));
    const own = report.results.find((r) => r.address === culprit)!;
    expect(own.error?.code).toBe('ERR_GPUCC_PPCIE_NOT_RESET');
    expect(own.detail).toMatch(/FSP RPC failed.*no device was reset/);
    for (const r of report.results.filter((r) => r.address !== culprit)) {
      expect(r.detail).toContain(`the set failed on ${culprit}, so no device was reset`);
      expect(r.detail).toContain('its knobs were put back');
    }
    // Nothing changed and nothing is left pending: the next reset of any device applies nothing new.
    const now = await status(engine);
    expect(now.devices.every((d) => d.ppcieMode === 'off' && d.pending === null)).toBe(true);
    expect(readIntentRecord(sysfs).pending).toEqual({});

    // The fault is gone: the next try switches the whole node.
    const again = await setMode(engine, { mode: 'ppcie', dryRun: false });
    expect(again.report?.ok).toBe(true);
    expect(resets(root).sort()).toEqual(ALL);
  });

  it('when every set succeeds, each device is reset once, after all are set, and verified in ppcie; back to on in stages too', async () => {
    const { root, engine } = await board();
    const order: string[] = [];
    const { set, reset } = engine.backend;
    engine.backend.set = async (d, step) => {
      order.push(`set ${d.address}`);
      return set(d, step);
    };
    engine.backend.reset = async (d) => {
      order.push(`reset ${d.address}`);
      return reset(d);
    };
    const result = await setMode(engine, { mode: 'ppcie', dryRun: false });
    expect(result.report?.ok).toBe(true);
    expect(result.report?.results.every((r) => r.outcome === 'switched' && r.after?.ppcie === 'on')).toBe(true);
    expect(resets(root).sort()).toEqual(ALL);
    const lastSet = order.findLastIndex((o) => o.startsWith('set'));
    const firstReset = order.findIndex((o) => o.startsWith('reset'));
    expect(lastSet).toBeLessThan(firstReset);
    expect(order.filter((o) => o.startsWith('set'))).toHaveLength(12);

    const back = await setMode(engine, { mode: 'on', dryRun: false });
    expect(back.report?.ok).toBe(true);
    const modes = await status(engine);
    expect(modes.devices.filter((d) => d.kind === 'gpu').every((d) => d.ccMode === 'on' && d.ppcieMode === 'off')).toBe(
      true,
    );
    expect(modes.devices.filter((d) => d.kind === 'nvswitch').every((d) => d.ppcieMode === 'off')).toBe(true);
  });

  it('a GPU a VM holds holds back the whole ppcie switch: no tool call touches the free devices, none is reset', async () => {
    const { root, engine } = await board();
    const held = H100_GPUS[2]!;
    vmHold(root, held);
    const result = await setMode(engine, { mode: 'ppcie', dryRun: false });
    expect(resets(root)).toEqual([]);
    expect(readHeldAccesses(root)).toEqual([]);
    const report = result.report!;
    expect(report.ok).toBe(false);
    expect(report.results.every((r) => r.outcome === 'refused' && r.error?.code === 'ERR_GPUCC_DEVICE_IN_USE')).toBe(
      true,
    );
    expect(report.results.find((r) => r.address === H100_GPUS[0])?.detail).toContain(
      `not switched to ppcie while ${held} (held by qemu-system-x86_64`,
    );
    const free = (await status(engine)).devices.filter((d) => d.address !== held);
    expect(free.every((d) => d.ppcieMode === 'off')).toBe(true);
  });

  it('NVSwitches the host driver owns hold back the GPUs too: no GPU is reset into ppcie alone', async () => {
    const { root, engine } = await board({ nvswitchDriver: true });
    const result = await setMode(engine, { mode: 'ppcie', dryRun: false });
    expect(resets(root)).toEqual([]);
    const gpu = result.report!.results.find((r) => r.address === H100_GPUS[0])!;
    expect([gpu.outcome, gpu.error?.code]).toEqual(['refused', 'ERR_GPUCC_DEVICE_HELD_BY_HOST_DRIVER']);
    expect(gpu.detail).toContain(`${NVSWITCHES[0]} (reads ppcie off, must be ppcie on; bound to nvidia-nvswitch)`);
  });
});
