// `npm run demo -- --real-k8s`: the README's demo scenario with the real kube-apiserver + etcd and the
// kubelet's own device manager around the four operands, run as a user runs it.
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { alive, DEMO, interrupt, PASSED_STEPS, startDemo, startedPids, untilOutput } from '../demo-output.js';
import { realTier, removeTempDirs, tempDir } from './processes.js';

const tier = realTier();
const run = promisify(execFile);

afterAll(removeTempDirs);

describe.skipIf(!tier.bin)('the demo with real Kubernetes peers (npm run demo -- --real-k8s)', () => {
  it('walks the whole scenario against kube-apiserver + etcd and the device manager, says so first, and leaves nothing running', async () => {
    const { stdout } = await run(process.execPath, [DEMO, '--real-k8s'], { timeout: 150_000 }).catch(
      (error: { stdout?: string; message: string }) => ({ stdout: error.stdout ?? error.message }),
    );
    // A failure shows the demo's own words: its failed step and what it printed at the end.
    expect({
      failed: stdout.split('\n').filter((l) => /FAIL|ERR_GPUCC_SIM_SUITE/.test(l)),
      end: stdout.slice(-1500),
    }).toMatchObject({ failed: [] });
    expect(stdout).toMatch(/demo passed/);
    expect(stdout).not.toMatch(/FAIL/);
    // The timeline's first lines name the peers, real.
    const timeline = stdout.split('\n').filter((l) => /^\s+\d+\.\d\ds {2}/.test(l));
    expect(timeline[0]).toMatch(/suite +API server: kube-apiserver v\d+\.\d+\.\d+ \+ etcd \(real\)$/);
    expect(timeline[1]).toMatch(/suite +kubelet: the kubelet's device manager v\d+\.\d+\.\d+ \(real\)$/);
    expect(stdout).not.toMatch(/\(fake\)/);
    expect(stdout).toMatch(
      /apiserver +kube-apiserver on https:\/\/127\.0\.0\.1:\d+, etcd on http:\/\/127\.0\.0\.1:\d+/,
    );
    for (const step of PASSED_STEPS) expect(stdout).toMatch(step);
    // What the real device manager counted, and its refusal of 2 GPUs in mode on with the plugin's rule.
    expect(stdout).toMatch(/kubelet: nvidia\.com\/pgpu 8\/8, nvidia\.com\/nvswitch 4\/4/);
    expect(stdout).toMatch(
      /kubelet +pod refused: .*GetPreferredAllocation.*mode on on Hopper allows 1 GPU per pod; request 1, or label the node nvidia\.com\/cc\.mode=ppcie/,
    );
    // cc-manager switched through the real API server: the labels it wrote are what the checks read.
    expect(stdout).toMatch(/cc-manager +8 GPU\(s\) and 4 NVSwitch\(es\) switched to ppcie/);
    const pids = startedPids(stdout);
    expect(pids.length).toBeGreaterThanOrEqual(10);
    expect(pids.filter(alive)).toEqual([]);
  }, 180_000);

  it('--keep leaves it running: kubectl switches the node through the real API server, Ctrl-C stops everything', async () => {
    const dir = path.join(tempDir('demo-keep'), 'node');
    const { child, stdout } = startDemo(['--real-k8s', '--keep', '--dir', dir]);
    try {
      await untilOutput(() => /keeps running/.test(stdout()), child, 120_000);
      // The printed command, as a user pastes it.
      const label = /^ {2}(kubectl --kubeconfig \S+ label node \S+ nvidia\.com\/cc\.mode=on --overwrite)/m.exec(
        stdout(),
      )?.[1];
      expect(label).toBeDefined();
      const [command, ...args] = label!.split(' ');
      await run(command!, args);
      await untilOutput(() => /cc-manager +8 GPU\(s\) switched to on/.test(stdout()), child, 60_000);
      const pids = startedPids(stdout());
      expect(pids.filter(alive).length).toBeGreaterThanOrEqual(4);

      expect(await interrupt(child)).toBe(0);
      expect(stdout()).toMatch(/demo passed/);
      expect(pids.filter(alive)).toEqual([]);
      expect(
        readdirSync(path.join(dir, '.gpucc-sim/suite/k8s'))
          .filter((f) => f.endsWith('.log'))
          .sort(),
      ).toEqual(['etcd.log', 'kube-apiserver.log']);
    } finally {
      child.kill('SIGKILL');
    }
  }, 180_000);
});

if (!tier.bin) {
  it.skip('real tier: the demo with real peers (not built: npm run test:real)');
}
