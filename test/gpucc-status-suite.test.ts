// `gpucc status` after the demo's scenario: what it shows agrees with what each operand did, as read
// from the node itself (drivers, CC registers, spec files) and from the fake kubelet.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import type { StatusDocument } from '@gpucc/gpucc';
import { runScenario, SCENARIO, type Suite } from '@gpucc/testbed';
import { startSuite } from '@gpucc/testbed/suite-fixtures';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const GPUCC = path.resolve(import.meta.dirname, '../packages/gpucc/bin/gpucc.mjs');
const OPERANDS = ['cc-manager', 'vfio-manager', 'kata-manager', 'sandbox-device-plugin'] as const;

/** The repository's gpucc as an operator runs it: a process, the simulator attached by its bin script. */
async function gpuccStatus(suite: Suite): Promise<{ code: number; doc: StatusDocument }> {
  // Each operand's /readyz where the suite runs it (the defaults would be 127.0.0.1:9471-9474).
  const health = OPERANDS.map((o) => `${o}=${suite.metricsUrl(o).replace(/^http:\/\//, '')}`).join(',');
  const args = [GPUCC, 'status', '--host-root', suite.path('.'), '--output', 'json', '--node-name', suite.nodeName];
  args.push('--health-address', health);
  try {
    const { stdout } = await run(process.execPath, args, { timeout: 30_000 });
    return { code: 0, doc: JSON.parse(stdout) as StatusDocument };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    if (e.code !== 1) throw new Error(`gpucc status failed (${e.code}): ${e.stderr}`);
    return { code: 1, doc: JSON.parse(e.stdout) as StatusDocument };
  }
}

/** Every device as the operands left it: driver, recorded modes, CDI name and advertised health. */
async function expectAgreement(suite: Suite, doc: StatusDocument, mode: string): Promise<void> {
  const snapshot = await suite.snapshot();
  const cdiNames = Object.values(snapshot.specs).flatMap((s) => Object.keys(s.devices).map((id) => `${s.kind}=${id}`));
  expect(doc.devices.map((d) => d.address)).toEqual(snapshot.devices.map((d) => d.address).sort());
  for (const observed of snapshot.devices) {
    const row = doc.devices.find((d) => d.address === observed.address)!;
    expect(row.driver).toBe(observed.driver ?? null);
    expect(row.iommuGroup).toBe(observed.iommuGroup ?? null);
    // cc-manager's record is what it last read: the registers themselves (an NVSwitch has no CC mode).
    expect({ cc: row.cc?.cc ?? null, ppcie: row.cc?.ppcie ?? null, desired: row.cc?.desired }).toEqual({
      cc: observed.kind === 'gpu' ? (observed.cc ?? null) : null,
      ppcie: observed.ppcie ?? null,
      desired: mode,
    });
    expect(cdiNames).toContain(row.cdi?.name);
    expect(row.advertised).toMatchObject({ health: 'Healthy' });
    expect(`${row.advertised?.resource}=${row.advertised?.id}`).toBe(row.cdi?.name);
  }
  const kubelet = snapshot.kubelet!;
  for (const row of doc.devices) {
    const resource = kubelet.resources[row.advertised!.resource];
    expect(resource?.devices.map((d) => d.ID)).toContain(row.advertised!.id);
  }
  // Every operand answered its /readyz.
  for (const operand of OPERANDS)
    expect(doc.operands.find((o) => o.name === operand)).toMatchObject({
      state: 'ready',
      evidence: expect.stringMatching(/\/readyz$/),
    });
  expect(doc.header.nodeName).toBe(suite.nodeName);
}

describe('gpucc status on the whole suite', () => {
  it('after the demo scenario agrees with what each operand did, allocations included', async () => {
    const suite = await startSuite();
    // Bind, specs, advertise, mode on, a 2-GPU pod refused (the CC topology rule); then a 1-GPU pod
    // that stays allocated while gpucc looks (the scenario's own 1-GPU step ends its pod at once).
    const firstPart = await runScenario(suite, SCENARIO.slice(0, 3));
    expect(firstPart.steps.filter((s) => !s.ok)).toEqual([]);
    await suite.waitFor('cc-manager recorded the modes', async () =>
      (await gpuccStatus(suite)).doc.devices.every((d) => d.cc?.desired === 'on'),
    );
    await suite.allocate('nvidia.com/pgpu', 1);
    const { code, doc } = await gpuccStatus(suite);
    await expectAgreement(suite, doc, 'on');
    // The allocated device shows the fake kubelet's pod; no proc/ of processes here, so no holder problem.
    const allocations = (await suite.kubelet()).allocations;
    expect(allocations).toHaveLength(1);
    const allocated = doc.devices.filter((d) => d.allocations.length > 0);
    expect(allocated.map((d) => d.advertised!.id).sort()).toEqual([...allocations[0]!.deviceIds].sort());
    for (const d of allocated)
      expect(d.allocations).toEqual([{ podUid: allocations[0]!.podUid, container: 'workload' }]);
    expect(doc.problems).toEqual([]);
    expect(code).toBe(0);
    await suite.release('nvidia.com/pgpu');

    // The rest of the scenario: ppcie, then off.
    const secondPart = await runScenario(suite, SCENARIO.slice(4));
    expect(secondPart.steps.filter((s) => !s.ok)).toEqual([]);
    await suite.waitFor('cc-manager recorded the modes', async () =>
      (await gpuccStatus(suite)).doc.devices.every((d) => d.cc?.desired === 'off'),
    );
    const after = await gpuccStatus(suite);
    await expectAgreement(suite, after.doc, 'off');
    expect(after.doc.problems).toEqual([]);
  }, 180_000);
});
