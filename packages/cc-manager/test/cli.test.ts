import { type ChildProcess, execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { localFs } from '@gpucc/hal';
import { type ApiServer, listEvents, nodeLabels, setLabels, startApiServer, writeToolSettings } from '@gpucc/sim';
import { bindAll } from '@gpucc/testbed/fixtures';
import { simNode } from '@gpucc/testbed/vitest';
import { afterEach, describe, expect, it } from 'vitest';
import { READY_MARKER } from '../src/reconcile.js';
import { STATE_FILE } from '../src/state.js';
import { resets } from './helpers.js';

const BIN = path.resolve(import.meta.dirname, '../bin/cc-manager.mjs');
const exec = promisify(execFile);
const ENV = { ...process.env };
for (const key of Object.keys(ENV)) {
  if (key.startsWith('GPUCC_') || ['NODE_NAME', 'KUBECONFIG', 'DEFAULT_CC_MODE'].includes(key)) delete ENV[key];
}

async function cc(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await exec(process.execPath, [BIN, ...args], {
      env: { ...ENV, ...env },
      timeout: 30_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('cc-manager status and set', () => {
  it('status: the host TEE and every device, as a table and as JSON', async () => {
    const { root } = simNode('hgx-h100-8');
    const table = await cc(['status', '--host-root', root]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^host TEE: AMD SEV-SNP\nbackend: gpu-admin-tools\nnode mode: off\n/);
    expect(table.stdout).toMatch(
      /0000:07:00\.0\s+nvswitch\s+NVSwitch_gen3\s+0x22a3\s+nvidia-nvswitch\s+-\s+yes\s+-\s+off\s+-/,
    );
    expect(table.stdout).toMatch(/0000:13:00\.0\s+gpu\s+H100\s+0x2330\s+nvidia\s+yes\s+yes\s+off\s+off\s+-/);
    const json = JSON.parse((await cc(['status', '--output', 'json'], { GPUCC_HOST_ROOT: root })).stdout);
    expect(json).toMatchObject({ tee: 'sev-snp', mode: 'off', canSwitch: true });
    expect(json.devices).toHaveLength(12);
  });

  it('set: exit 0 when every device is in the mode, 1 when one is not, and nothing is reset twice', async () => {
    const { root, sysfs } = simNode('iommufd-h200-2');
    const held = await cc(['set', 'on', '--host-root', root]);
    expect(held.code).toBe(1);
    expect(held.stdout).toMatch(
      /0000:23:00\.0\s+gpu\s+H200\s+cc off, ppcie off\s+refused.*ERR_GPUCC_DEVICE_HELD_BY_HOST_DRIVER/,
    );
    expect(resets(root)).toEqual([]);
    await bindAll(sysfs);
    const dry = await cc(['set', 'on', '--dry-run', '--host-root', root]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/0000:23:00\.0\s+gpu\s+H200\s+cc off, ppcie off\s+cc on, ppcie off\s+switch\s+2:cc on/);
    expect(resets(root)).toEqual([]);
    const set = await cc(['set', 'on', '--host-root', root, '--output', 'json']);
    expect(set.code).toBe(0);
    const report = JSON.parse(set.stdout).report;
    expect(report.results.map((r: { outcome: string }) => r.outcome)).toEqual(['switched', 'switched']);
    expect(resets(root)).toHaveLength(2);
  });

  it('bad input: a clear error naming it, exit 2 (1 for a read-only backend), nothing touched', async () => {
    const { root } = simNode('iommufd-h200-2');
    const cases: Array<[string[], RegExp]> = [
      [['set', 'On'], /ERR_GPUCC_INVALID_CC_MODE: invalid CC mode "On"\n {2}hint: modes are lower-case: use "on"/],
      [['set', 'on', '--device', '23:00.0'], /ERR_GPUCC_INVALID_PCI_ADDRESS/],
      [
        ['set', 'on', '--device', '0000:99:00.0'],
        /ERR_GPUCC_DEVICE_NOT_FOUND: 0000:99:00\.0 is not an NVIDIA GPU or NVSwitch/,
      ],
      [['set', 'ppcie', '--device', '0000:23:00.0'], /ppcie is a mode of the whole node/],
      [['set', 'on', '--backend', 'magic'], /--backend \(GPUCC_BACKEND\).*one of: auto, gpu-admin-tools, nvidia-smi/],
      [
        ['set', 'on', '--cc-capable-ids', 'h100'],
        /ERR_GPUCC_INVALID_CONFIG: invalid PCI device ID or range "h100" in --cc-capable-ids/,
      ],
      [['set', 'on', '--backend', 'nvidia-smi'], /ERR_GPUCC_CC_BACKEND_CANNOT_SWITCH/],
      [['run'], /--node-name \(NODE_NAME\).*required: set NODE_NAME or --node-name/],
      [
        ['run', '--node-name', 'n1', '--kubeconfig', '/nonexistent'],
        /ERR_GPUCC_KUBE_CONFIG: cannot load kubeconfig \/nonexistent/,
      ],
    ];
    const results = await Promise.all(cases.map(([args]) => cc([...args, '--host-root', root])));
    results.forEach((result, i) => {
      const [args, message] = cases[i]!;
      expect([args, result.code]).toEqual([args, args.includes('nvidia-smi') ? 1 : 2]);
      expect(result.stderr).toMatch(message);
    });
    expect(resets(root)).toEqual([]);
  });
});

describe('cc-manager run (the binary, with the fake API server)', () => {
  const servers: ApiServer[] = [];
  const children: ChildProcess[] = [];
  afterEach(async () => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
    for (const s of servers.splice(0)) await s.close();
  });

  async function start(root: string, server: ApiServer) {
    const child = spawn(
      process.execPath,
      [
        BIN,
        'run',
        '--host-root',
        root,
        '--kubeconfig',
        server.kubeconfigPath,
        '--metrics-address',
        '127.0.0.1:0',
        '--log-format',
        'json',
      ],
      { env: { ...ENV, NODE_NAME: server.nodeName } },
    );
    children.push(child);
    const lines: Array<Record<string, unknown>> = [];
    const waiters: Array<() => void> = [];
    createInterface({ input: child.stdout! }).on('line', (line) => {
      lines.push(JSON.parse(line) as Record<string, unknown>);
      for (const w of waiters.splice(0)) w();
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const waitFor = async (test: (l: Record<string, unknown>) => boolean, since = 0) => {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const found = lines.slice(since).find(test);
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`no such log line; last: ${JSON.stringify(lines.slice(-3))}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 100);
        });
      }
    };
    const port = (await waitFor((l) => l.event === 'http.listen')).port as number;
    return { child, lines, waitFor, exited, url: (p: string) => `http://127.0.0.1:${port}${p}` };
  }

  it('converges and says so (/readyz, /metrics, marker); SIGTERM mid-switch lets the switch finish, then exits 0', async () => {
    const { root, sysfs } = simNode('iommufd-h200-2');
    await bindAll(sysfs);
    setLabels(root, { 'nvidia.com/cc.mode': 'on' });
    const server = await startApiServer({ root });
    servers.push(server);
    const daemon = await start(root, server);
    await daemon.waitFor((l) => l.event === 'reconcile.done');
    expect((await fetch(daemon.url('/healthz'))).status).toBe(200);
    expect((await fetch(daemon.url('/readyz'))).status).toBe(200);
    const metrics = await (await fetch(daemon.url('/metrics'))).text();
    expect(metrics).toMatch(/gpucc_reconcile_total\{result="success"\} 1/);
    expect(metrics).toMatch(/gpucc_ready 1/);
    expect(localFs.exists(path.join(root, READY_MARKER))).toBe(true);
    expect(nodeLabels(root)).toMatchObject({ 'nvidia.com/cc.mode.state': 'on', 'nvidia.com/cc.ready.state': 'true' });

    writeToolSettings(root, { resetMs: 1_500 });
    const since = daemon.lines.length;
    setLabels(root, { 'nvidia.com/cc.mode': 'devtools' });
    await daemon.waitFor((l) => l.event === 'cc.device.switch', since);
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited).toBe(0);
    expect(nodeLabels(root)).toMatchObject({
      'nvidia.com/cc.mode.state': 'devtools',
      'nvidia.com/cc.ready.state': 'devtools',
      'nvidia.com/gpu.deploy.vfio-manager': 'true',
    });
    expect(listEvents(root).map((e) => e.reason)).toEqual([
      'CcModeSwitchStarted',
      'CcModeSwitched',
      'CcModeSwitchStarted',
      'CcModeSwitched',
    ]);
  }, 40_000);

  it('killed mid-switch, a restart resumes from what it observes: operands restored, the mode reached', async () => {
    const { root, sysfs } = simNode('iommufd-h200-2');
    await bindAll(sysfs);
    setLabels(root, { 'nvidia.com/cc.mode': 'devtools' });
    writeToolSettings(root, { resetMs: 1_500 });
    const server = await startApiServer({ root });
    servers.push(server);
    const first = await start(root, server);
    await first.waitFor((l) => l.event === 'cc.device.switch');
    first.child.kill('SIGKILL');
    await first.exited;
    // What the crash left: no runtime class matches, operands paused, knobs recorded as pending.
    expect(nodeLabels(root)).toMatchObject({
      'nvidia.com/cc.ready.state': '',
      'nvidia.com/gpu.deploy.vfio-manager': 'paused-for-cc-mode-change',
    });
    expect(Object.keys(JSON.parse(localFs.readText(path.join(root, STATE_FILE))).pending)).toHaveLength(2);

    writeToolSettings(root, { resetMs: 0 });
    const second = await start(root, server);
    await second.waitFor((l) => l.event === 'reconcile.done');
    expect(nodeLabels(root)).toMatchObject({
      'nvidia.com/cc.mode.state': 'devtools',
      'nvidia.com/cc.ready.state': 'devtools',
      'nvidia.com/gpu.deploy.vfio-manager': 'true',
      'nvidia.com/gpu.deploy.kata-sandbox-device-plugin': 'true',
    });
    expect(JSON.parse(localFs.readText(path.join(root, STATE_FILE))).pending).toEqual({});
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  }, 40_000);
});
