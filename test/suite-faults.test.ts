// The whole suite under faults: the four operands run as processes on a simulated hgx-h100-8 node
// with a fake API server and kubelet (packages/testbed/src/suite). After each fault the node must
// converge with nothing lost: every GPU and NVSwitch on VFIO in the labelled mode, every device in a
// CDI spec whose nodes exist, no spec naming a missing node, true and unpaused labels, and every GPU
// allocatable again (convergenceProblems). Kill times are random; the seed is in the test name.
import { renameSync } from 'node:fs';
import path from 'node:path';
import { CC_MODE_LABEL, CC_READY_STATE_LABEL } from '@gpucc/cc-manager';
import { OPERANDS, type Suite, specProblems } from '@gpucc/testbed';
import { seededRandom } from '@gpucc/testbed/fixtures';
import { SEED, sleep, startSuite } from '@gpucc/testbed/suite-fixtures';
import { describe, expect, it } from 'vitest';

const TIMEOUT = 120_000;

/**
 * SIGKILL, then wait for its exit and its restart: a kill that lands after a switch finished leaves
 * the node converged at once, before either is seen, and the counts below would miss them.
 */
async function killAndReap(suite: Suite, operand: (typeof OPERANDS)[number]): Promise<void> {
  const { starts, exits } = suite.history(operand);
  const exited = exits.length; // the history's list grows in place
  expect(suite.kill(operand)).toBe(true);
  await suite.waitFor(
    `${operand} killed and started again`,
    () => {
      const now = suite.history(operand);
      return now.exits.length > exited && now.starts > starts;
    },
    { quiet: true },
  );
}

describe(`kill -9 of each operand at random points (seed ${SEED})`, () => {
  it.each(OPERANDS)(
    '%s: killed while the node is set up and again during a switch, everything converges',
    async (operand) => {
      const random = seededRandom(SEED + OPERANDS.indexOf(operand));
      const suite = await startSuite();

      // While vfio-manager binds, kata-manager writes specs and the plugin registers.
      await suite.waitFor(`${operand} running`, () => suite.isRunning(operand), { quiet: true });
      await sleep(Math.floor(random() * 1500));
      await killAndReap(suite, operand);
      await suite.converged('off', 'converged on off after the kill');

      // During the switch to on: vfio-manager and the plugin are paused for part of it, so the kill
      // lands when the operand runs (before the pause, or after its restore).
      await suite.label({ [CC_MODE_LABEL]: 'on' });
      await sleep(Math.floor(random() * 2500));
      await suite.waitFor(`${operand} running`, () => suite.isRunning(operand), { quiet: true });
      await killAndReap(suite, operand);
      await suite.converged('on', 'converged on on after the kill');

      const { starts, exits } = suite.history(operand);
      expect(exits.filter((e) => e.signal === 'SIGKILL')).toHaveLength(2);
      expect(starts).toBeGreaterThanOrEqual(3);
    },
    TIMEOUT,
  );
});

describe('the kubelet restarts mid-scenario', () => {
  it(
    'while the plugin is paused for a switch and again after it: the plugin re-registers each time',
    async () => {
      const suite = await startSuite();
      await suite.converged('off', 'converged on off');
      await suite.label({ [CC_MODE_LABEL]: 'ppcie' });
      await suite.waitFor('the device plugin paused', () => !suite.isRunning('sandbox-device-plugin'));
      await suite.restartKubelet();
      await suite.converged('ppcie', 'converged on ppcie');

      await suite.restartKubelet();
      await suite.converged('ppcie', 'every GPU allocatable again after the second restart');
      const kubelet = await suite.kubelet();
      expect(kubelet.restarts).toBe(2);
      // ppcie on Hopper: the whole node in one pod.
      const allocation = await suite.allocate('nvidia.com/pgpu', 8);
      expect(allocation.deviceIds).toHaveLength(8);
    },
    TIMEOUT,
  );
});

describe('an API server outage mid-switch', () => {
  it(
    'cc-manager finishes the switch, then restores the operands and writes the state once the server is back',
    async () => {
      const suite = await startSuite();
      await suite.converged('off', 'converged on off');
      await suite.label({ [CC_MODE_LABEL]: 'on' });
      // The operands are paused: the switch is under way.
      await suite.waitFor('the device plugin paused', () => !suite.isRunning('sandbox-device-plugin'));
      expect((await suite.labels())[CC_READY_STATE_LABEL]).toBe('');
      await suite.stopApiServer();
      await sleep(3000);
      // Nothing may claim the new mode while the server is away: the labels still say "switching".
      expect((await suite.labels())[CC_READY_STATE_LABEL]).toBe('');
      await suite.startApiServer();
      await suite.converged('on', 'converged on on after the outage');
    },
    TIMEOUT,
  );
});

describe('a device node vanishes while its GPU is allocated', () => {
  it(
    'the GPU turns unhealthy and leaves the CDI spec, and both come back with the node',
    async () => {
      const suite = await startSuite({ initialLabels: { [CC_MODE_LABEL]: 'on' } });
      await suite.converged('on', 'converged on on');
      const allocation = await suite.allocate('nvidia.com/pgpu', 1); // mode on, Hopper: 1 GPU per pod
      const id = allocation.deviceIds[0];
      const node = path.join(suite.root, 'dev/vfio', String(id));
      const away = path.join(suite.root, `dev/.vfio-${id}-gone`);

      renameSync(node, away); // as when udev removes it
      const { value: gone } = await suite.waitFor('the GPU unhealthy and out of the spec', async () => {
        const snapshot = await suite.snapshot();
        const gpus = snapshot.kubelet?.resources['nvidia.com/pgpu'];
        const spec = Object.values(snapshot.specs).find((s) => s.kind === 'nvidia.com/pgpu');
        return gpus?.allocatable === 7 && spec && !(String(id) in spec.devices) ? snapshot : undefined;
      });
      expect(specProblems(gone, suite.root)).toEqual([]);
      const unhealthy = gone.kubelet?.resources['nvidia.com/pgpu']?.devices.find((d) => d.ID === String(id));
      expect(unhealthy?.health).toBe('Unhealthy');
      await expect(suite.allocate('nvidia.com/pgpu', 8)).rejects.toThrow();

      renameSync(away, node);
      await suite.converged('on', 'the GPU back in the spec and allocatable');
    },
    TIMEOUT,
  );
});
