// README's first command: the whole suite on a simulated node, run as a user runs it.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import { alive, DEMO, interrupt, PASSED_STEPS, startDemo, startedPids, untilOutput } from './demo-output.js';

const run = promisify(execFile);
const SIM = path.resolve(import.meta.dirname, '../packages/sim/bin/gpucc-sim.mjs');

describe('the README demo (npm run demo)', () => {
  it('walks the scenario with the four operands as processes, checks each step, and leaves nothing running', async () => {
    const { stdout } = await run(process.execPath, [DEMO], { timeout: 120_000 });
    expect(stdout).toMatch(/demo passed/);
    expect(stdout).not.toMatch(/FAIL/);
    // Every step, and what each operand did on the way, with times.
    for (const step of PASSED_STEPS) expect(stdout).toMatch(step);
    expect(stdout).toMatch(/\d+\.\d\ds {2}vfio-manager +binding 0000:\S+ to vfio-pci/);
    expect(stdout).toMatch(/kata-manager +wrote \/var\/run\/cdi\/nvidia\.com-pgpu_gpucc\.yaml/);
    expect(stdout).toMatch(/sandbox-device-plugin +registered nvidia\.com\/pgpu with the kubelet/);
    expect(stdout).toMatch(/cc-manager +8 GPU\(s\) and 4 NVSwitch\(es\) switched to ppcie/);
    expect(stdout).toMatch(/nvidia\.com\/pgpu \d+ → .*\/dev\/vfio\/vfio; CDI nvidia\.com\/pgpu=\d+$/m);
    // The refused pod's message, as the kubelet gives it, and the rule the plugin follows.
    expect(stdout).toMatch(
      /kubelet +pod refused: .*mode on on Hopper allows 1 GPU per pod; request 1, or label the node nvidia\.com\/cc\.mode=ppcie and request all 8 GPUs and 4 NVSwitches/,
    );
    expect(stdout).toMatch(/sandbox-device-plugin +mode on, Hopper: 1 GPU per pod/);
    // Paused around each of the three switches and started again by the DaemonSet controller.
    expect(stdout.match(/stopping sandbox-device-plugin: its label/g)).toHaveLength(3);
    const pids = startedPids(stdout);
    expect(pids.length).toBeGreaterThanOrEqual(10);
    expect(pids.filter(alive)).toEqual([]);
  }, 150_000);

  it('--keep leaves the suite running to poke at until Ctrl-C, then stops it', async () => {
    const dir = path.join(tempDir('gpucc-demo-keep-'), 'node');
    const { child, stdout: output } = startDemo(['--keep', '--dir', dir]);
    try {
      await untilOutput(() => /keeps running/.test(output()), child, 120_000);
      const stdout = output();
      // What the printed instructions say works: the node's labels and an operand's metrics.
      const { stdout: labels } = await run(process.execPath, [SIM, 'label', dir]);
      expect(labels).toMatch(/nvidia\.com\/cc\.mode\.state\s*=?\s*off/);
      const url = /curl -s (http:\/\/127\.0\.0\.1:\d+)\/metrics +# cc-manager/.exec(stdout)?.[1];
      const metrics = await fetch(`${url}/metrics`);
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toMatch(/^# HELP /m);
      const pids = startedPids(stdout);
      expect(pids.filter(alive).length).toBeGreaterThanOrEqual(4);

      expect(await interrupt(child)).toBe(0);
      expect(output()).toMatch(/demo passed/);
      expect(pids.filter(alive)).toEqual([]);
      expect(existsSync(path.join(dir, '.gpucc-sim/suite/cc-manager.log'))).toBe(true); // --dir is kept
    } finally {
      child.kill('SIGKILL');
    }
  }, 150_000);

  it('SIGTERM during the scenario stops every process it started and removes the node', async () => {
    const { child, stdout } = startDemo([]);
    try {
      await untilOutput(() => /started sandbox-device-plugin/.test(stdout()), child, 60_000);
      const root = / node at (\S+)$/m.exec(stdout())?.[1];
      child.kill('SIGTERM');
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code).toBe(143);
      expect(stdout()).toMatch(/\nSIGTERM: stopping the suite\n[\s\S]*\ndemo interrupted\n$/);
      expect(startedPids(stdout()).filter(alive)).toEqual([]);
      expect(root && existsSync(root)).toBe(false);
    } finally {
      child.kill('SIGKILL');
    }
  }, 90_000);

  it('exits 1 naming the error when the suite cannot start (unknown profile), 2 on a bad option', async () => {
    const failed = await run(process.execPath, [DEMO, '--profile', 'no-such-profile'], { timeout: 60_000 }).then(
      () => undefined,
      (e: { code: number; stdout: string }) => e,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stdout).toMatch(/ERR_GPUCC_SIM_UNKNOWN_PROFILE/);
    expect(failed?.stdout).toMatch(/demo FAILED/);

    const usage = await run(process.execPath, [DEMO, '--no-such-option']).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(usage?.code).toBe(2);
    expect(usage?.stderr).toMatch(/usage: npm run demo/);
  }, 90_000);

  it('--real-k8s where the real components are not built: exit 2 with one line saying how to build them', async () => {
    const env = { ...process.env, GPUCC_K8S_CACHE: tempDir('gpucc-demo-no-k8s-') };
    const failed = await run(process.execPath, [DEMO, '--real-k8s'], { env }).then(
      () => undefined,
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(failed?.code).toBe(2);
    expect(failed?.stdout).toBe('');
    expect(failed?.stderr).toBe(
      "demo: --real-k8s needs kube-apiserver, etcd and the kubelet's device manager built from source: sh scripts/k8s.sh build (needs Go; about 20 min once, then cached)\n",
    );
  });
});
