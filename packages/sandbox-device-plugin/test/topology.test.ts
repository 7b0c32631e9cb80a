import { type CcMode, type CcModeState, type HostRoot, writeCcNodeState } from '@gpucc/hal';
import type { FakeKubelet } from '@gpucc/sim';
import { boundNode, captureCli } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import { allocate } from '../src/allocate.js';
import { main } from '../src/cli.js';
import type { PluginSettings } from '../src/settings.js';
import { startKubelet, startPlugin } from './helpers.js';

/**
 * The CC topology rules (docs/facts/cc-topology.md#the-rules) through the fake kubelet: what it is
 * offered by GetPreferredAllocation, what Allocate lets through, and the message a refused pod gets.
 */

const PGPU = 'nvidia.com/pgpu';
const NVSWITCH = 'nvidia.com/nvswitch';

async function record(sysfs: HostRoot, state: CcModeState, switchingTo?: CcMode): Promise<void> {
  const since = '2026-12-07T22:00:00.000Z';
  await writeCcNodeState(sysfs, {
    state,
    since,
    ...(switchingTo ? { switching: { from: state, to: switchingTo, since } } : {}),
  });
}

async function node(
  profile: string,
  state: CcModeState | undefined,
  settings: Partial<PluginSettings> = {},
): Promise<{ sysfs: HostRoot; kubelet: FakeKubelet; root: string }> {
  const nvswitches = profile === 'hgx-h100-8';
  const { root, sysfs } = await boundNode(profile, { nvswitches });
  if (state !== undefined) await record(sysfs, state);
  const kubelet = await startKubelet(root);
  await startPlugin(sysfs, { nvswitches, ...settings });
  const gpus = profile === 'rtx-pro-6000-4' ? 4 : 8;
  await kubelet.waitFor(
    (s) => s.resources[PGPU]?.allocatable === gpus && (!nvswitches || s.resources[NVSWITCH]?.allocatable === 4),
  );
  return { sysfs, kubelet, root };
}

/** The allocation's device count, or the refusal's message. */
async function tryAllocate(kubelet: FakeKubelet, resource: string, count: number): Promise<number | string> {
  try {
    return (await kubelet.allocate(resource, count)).deviceIds.length;
  } catch (error) {
    return (error as Error).message;
  }
}

describe('which sets a pod may take, by profile and mode', () => {
  // [profile, mode, resource, count, allowed]
  const table: Array<[string, CcModeState, string, number, boolean]> = [
    ['hgx-h100-8', 'off', PGPU, 3, true],
    ['hgx-h100-8', 'off', NVSWITCH, 2, true],
    ['hgx-h100-8', 'on', PGPU, 1, true],
    ['hgx-h100-8', 'on', PGPU, 2, false],
    ['hgx-h100-8', 'on', PGPU, 8, false],
    ['hgx-h100-8', 'on', NVSWITCH, 1, false],
    ['hgx-h100-8', 'devtools', PGPU, 2, false],
    ['hgx-h100-8', 'ppcie', PGPU, 8, true],
    ['hgx-h100-8', 'ppcie', NVSWITCH, 4, true],
    ['hgx-h100-8', 'ppcie', PGPU, 1, false],
    ['hgx-h100-8', 'ppcie', NVSWITCH, 2, false],
    ['hgx-b200-8', 'off', PGPU, 5, true],
    ['hgx-b200-8', 'on', PGPU, 1, true],
    ['hgx-b200-8', 'on', PGPU, 8, true],
    ['hgx-b200-8', 'on', PGPU, 4, false],
    ['rtx-pro-6000-4', 'off', PGPU, 2, true],
    ['rtx-pro-6000-4', 'on', PGPU, 1, true],
    ['rtx-pro-6000-4', 'on', PGPU, 2, false],
    ['rtx-pro-6000-4', 'on', PGPU, 4, false],
  ];
  it.each(table)('%s in mode %s: %s × %i allowed=%s', async (profile, mode, resource, count, allowed) => {
    const { kubelet } = await node(profile, mode);
    const result = await tryAllocate(kubelet, resource, count);
    if (allowed) expect(result).toBe(count);
    else expect(result).toMatch(/ERR_GPUCC_CC_TOPOLOGY_REFUSED/);
  });
});

describe('the refusal says the rule and the fix', () => {
  it('hgx-h100-8 in mode on, 2 GPUs: 1 per pod, or ppcie with the whole node', async () => {
    const { kubelet } = await node('hgx-h100-8', 'on');
    const result = await tryAllocate(kubelet, PGPU, 2);
    expect(result).toContain(
      'mode on on Hopper allows 1 GPU per pod; request 1, or label the node nvidia.com/cc.mode=ppcie and request all 8 GPUs and 4 NVSwitches',
    );
    // Refused at GetPreferredAllocation already, with the same words: nothing was allocated.
    expect(result).toMatch(/^GetPreferredAllocation for nvidia.com\/pgpu failed: ERR_GPUCC_CC_TOPOLOGY_REFUSED/);
    expect(kubelet.state().allocations).toEqual([]);
  });

  it('hgx-h100-8 in ppcie, 4 GPUs: only the whole node', async () => {
    const { kubelet } = await node('hgx-h100-8', 'ppcie');
    expect(await tryAllocate(kubelet, PGPU, 4)).toContain(
      'mode ppcie on Hopper allows only the whole node in one pod: all 8 GPUs and 4 NVSwitches; request all 8 GPUs and 4 NVSwitches, or label the node nvidia.com/cc.mode=on for 1 GPU per pod',
    );
  });

  it('hgx-b200-8 in on, 3 GPUs: 1 or all 8', async () => {
    const { kubelet } = await node('hgx-b200-8', 'on');
    expect(await tryAllocate(kubelet, PGPU, 3)).toContain(
      'mode on on Blackwell allows 1 GPU per pod, or all 8 in one pod; request 1 or 8',
    );
  });

  it('rtx-pro-6000-4 in on, 2 GPUs: 1 per pod, no ppcie to offer', async () => {
    const { kubelet } = await node('rtx-pro-6000-4', 'on');
    const result = await tryAllocate(kubelet, PGPU, 2);
    expect(result).toContain('mode on on Blackwell (gb202) allows 1 GPU per pod; request 1');
    expect(result).not.toContain('ppcie');
  });
});

describe('preferred sets', () => {
  it('hgx-h100-8 in ppcie: the whole node is preferred for both resources', async () => {
    const { kubelet } = await node('hgx-h100-8', 'ppcie');
    const gpus = await kubelet.allocate(PGPU, 8);
    const switches = await kubelet.allocate(NVSWITCH, 4);
    expect(gpus.preferred).toEqual(['23', '27', '31', '35', '39', '43', '47', '51']);
    expect(switches.preferred).toEqual(['56', '58', '60', '62']);
  });

  it('hgx-h100-8 in on: one GPU per pod, eight pods fill the node', async () => {
    const { kubelet } = await node('hgx-h100-8', 'on');
    const taken: string[] = [];
    for (let pod = 0; pod < 8; pod++) {
      const allocation = await kubelet.allocate(PGPU, 1);
      expect(allocation.preferred).toHaveLength(1);
      taken.push(...allocation.deviceIds);
    }
    expect(new Set(taken).size).toBe(8);
  });
});

describe('warning mode, and a mode that changes', () => {
  it('--cc-topology warn allocates a set the rule refuses', async () => {
    const { kubelet } = await node('hgx-h100-8', 'on', { ccTopology: 'warn' });
    expect(await tryAllocate(kubelet, PGPU, 2)).toBe(2);
  });

  it('the mode cc-manager applies between two allocations governs the second', async () => {
    const { sysfs, kubelet } = await node('hgx-h100-8', 'off');
    expect(await tryAllocate(kubelet, PGPU, 2)).toBe(2);
    kubelet.release(PGPU);
    await record(sysfs, 'off', 'on'); // cc-manager begins a switch
    const during = await tryAllocate(kubelet, PGPU, 1);
    expect(during).toMatch(/ERR_GPUCC_CC_MODE_UNSETTLED/);
    expect(during).toContain('cc-manager is switching the node from off to on');
    await record(sysfs, 'on'); // and finishes it
    expect(await tryAllocate(kubelet, PGPU, 2)).toMatch(/mode on on Hopper allows 1 GPU per pod/);
    expect(await tryAllocate(kubelet, PGPU, 1)).toBe(1);
  });

  it('a failed switch refuses every allocation until cc-manager applies a mode', async () => {
    const { kubelet } = await node('hgx-b200-8', 'failed');
    expect(await tryAllocate(kubelet, PGPU, 1)).toMatch(/ERR_GPUCC_CC_MODE_UNSETTLED.*last switch failed/);
  });

  it('no mode record (cc-manager not deployed): any set, as before', async () => {
    const { kubelet } = await node('hgx-h100-8', undefined);
    expect(await tryAllocate(kubelet, PGPU, 3)).toBe(3);
  });
});

describe('list shows the rule', () => {
  it.each([
    ['hgx-h100-8', 'on', 'CC topology: mode on, Hopper: 1 GPU per pod'],
    ['hgx-h100-8', 'ppcie', 'CC topology: mode ppcie, Hopper: all 8 GPUs and 4 NVSwitches in one pod'],
    ['hgx-b200-8', 'on', 'CC topology: mode on, Blackwell: 1 GPU per pod, or all 8 in one pod'],
    ['rtx-pro-6000-4', 'on', 'CC topology: mode on, Blackwell (gb202): 1 GPU per pod'],
    ['rtx-pro-6000-4', 'off', 'CC topology: mode off, Blackwell (gb202): any set (no CC)'],
  ] as const)('%s in mode %s', async (profile, mode, line) => {
    const { root, sysfs } = await boundNode(profile, { nvswitches: true });
    await record(sysfs, mode);
    const { out, code } = await captureCli(main, 'sandbox-device-plugin', [
      'list',
      '--nvswitches',
      '--host-root',
      root,
      '--log-level',
      'error',
    ]);
    expect(code).toBe(0);
    expect(out).toContain(line);
  });
});

describe('Allocate checks by itself', () => {
  it('a kubelet that skips GetPreferredAllocation still gets the refusal from Allocate', async () => {
    const { sysfs } = await boundNode('hgx-h100-8');
    await record(sysfs, 'on');
    const plugin = await startPlugin(sysfs);
    const server = plugin.devices().get(PGPU)!;
    const context = { resourceName: PGPU, devices: server, cdiDevices: false };
    const check = { rule: plugin.topologyRule(), policy: 'enforce' as const, warn: () => {} };
    const request = { container_requests: [{ devices_ids: ['23', '27'] }] };
    expect(() => allocate(request, { ...context, topology: check })).toThrow(/allows 1 GPU per pod/);
    const warned: string[] = [];
    const warnOnly = { ...check, policy: 'warn' as const, warn: (e: Error) => warned.push(e.message) };
    expect(allocate(request, { ...context, topology: warnOnly }).container_responses).toHaveLength(1);
    expect(warned).toEqual([expect.stringMatching(/^mode on on Hopper allows 1 GPU per pod/)]);
  });
});

describe('ppcie with --no-nvswitches', () => {
  it('list warns that the pod cannot ask for the NVSwitches its VM needs', async () => {
    const { root, sysfs } = await boundNode('hgx-h100-8', { nvswitches: true });
    await record(sysfs, 'ppcie');
    const { out } = await captureCli(main, 'sandbox-device-plugin', [
      'list',
      '--no-nvswitches',
      '--host-root',
      root,
      '--log-level',
      'error',
    ]);
    expect(out).toContain(
      'CC topology: mode ppcie, Hopper: all 8 GPUs in one pod; but 4 NVSwitch(es) are not advertised: run the plugin without --no-nvswitches',
    );
  });
});
