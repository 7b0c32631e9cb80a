import { type ChildProcess, execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { localFs } from '@gpucc/hal';
import { DEVICE_PLUGIN_DIR } from '@gpucc/hal/kubelet';
import { parseExposition } from '@gpucc/testbed/fixtures';
import { boundNode } from '@gpucc/testbed/vitest';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../src/cli.js';
import { startKubelet } from './helpers.js';

const BIN = path.resolve(import.meta.dirname, '../bin/sandbox-device-plugin.mjs');
const SIM = path.resolve(import.meta.dirname, '../../sim/bin/gpucc-sim.mjs');
const exec = promisify(execFile);

async function cli(args: string[], env: Record<string, string> = {}) {
  let out = '';
  let err = '';
  const saved = { ...process.env };
  Object.assign(process.env, env);
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    err += String(chunk);
    return true;
  });
  try {
    const code = await main(['node', 'sandbox-device-plugin', ...args], (t) => {
      out += t;
    });
    return { code, out, err };
  } finally {
    spy.mockRestore();
    process.env = saved;
  }
}

// Binaries a test started and has not seen exit: killed after each test, so that one that failed or
// timed out leaves no daemon behind (two device plugins were once found alive after a timeout).
const alive = new Set<ChildProcess>();
afterEach(() => {
  for (const child of alive) child.kill('SIGKILL');
  alive.clear();
});

/** A started binary whose JSON log lines are collected; resolves `waitFor` on the first matching line. */
function daemon(command: string, args: string[]) {
  const child: ChildProcess = spawn(process.execPath, [command, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  alive.add(child);
  child.once('exit', () => alive.delete(child));
  const lines: string[] = [];
  const waiters: Array<{ test: (line: string) => boolean; resolve: (line: string) => void }> = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line);
    for (const w of waiters.filter((w) => w.test(line))) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(line);
    }
  });
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += String(d);
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    lines,
    exited,
    get stderr() {
      return stderr;
    },
    waitFor(test: (line: string) => boolean): Promise<string> {
      const found = lines.find(test);
      if (found) return Promise.resolve(found);
      return new Promise((resolve) => waiters.push({ test, resolve }));
    },
  };
}

describe('sandbox-device-plugin list', () => {
  it('prints the resources, IDs, NUMA nodes and device nodes it would advertise, as a table and as JSON', async () => {
    const { root } = await boundNode('hgx-h100-8', { nvswitches: true });
    const table = await cli(['list', '--host-root', root, '--nvswitches', '--log-level', 'warn']);
    expect(table.code).toBe(0);
    expect(table.out).toMatch(
      /nvidia\.com\/pgpu\s+23\s+Healthy\s+0\s+0000:13:00\.0\s+\/dev\/vfio\/vfio \/dev\/vfio\/23/,
    );
    expect(table.out).toMatch(/nvidia\.com\/nvswitch\s+56\s+Healthy\s+0\s+0000:07:00\.0/);
    const json = JSON.parse((await cli(['list', '--output', 'json', '--nvswitches'], { GPUCC_HOST_ROOT: root })).out);
    expect(json.vfioModel).toBe('legacy');
    expect(
      json.resources.map((r: { resourceName: string; socket: string; devices: unknown[] }) => [
        r.resourceName,
        r.socket,
        r.devices.length,
      ]),
    ).toEqual([
      ['nvidia.com/nvswitch', 'sandbox-nvswitch.sock', 4],
      ['nvidia.com/pgpu', 'sandbox-pgpu.sock', 8],
    ]);
  });

  it('advertises NVSwitches by default; --no-nvswitches or GPUCC_NVSWITCHES=false advertises GPUs only', async () => {
    const { root } = await boundNode('hgx-h100-8', { nvswitches: true });
    const resources = async (args: string[], env: Record<string, string> = {}) =>
      JSON.parse((await cli(['list', '--output', 'json', '--host-root', root, ...args], env)).out).resources.map(
        (r: { resourceName: string }) => r.resourceName,
      );
    expect(await resources([])).toEqual(['nvidia.com/nvswitch', 'nvidia.com/pgpu']);
    expect(await resources(['--no-nvswitches'])).toEqual(['nvidia.com/pgpu']);
    expect(await resources([], { GPUCC_NVSWITCHES: 'false' })).toEqual(['nvidia.com/pgpu']);
  });

  it('P_GPU_ALIAS="" names GPUs per model; an alias that is no valid resource name exits 2 with the reason', async () => {
    const { root } = await boundNode('h100-pcie-1');
    const json = JSON.parse((await cli(['list', '--output', 'json', '--host-root', root], { P_GPU_ALIAS: '' })).out);
    expect(json.resources[0].resourceName).toBe('nvidia.com/GH100_H100_PCIE');
    const bad = await cli(['list', '--host-root', root], { P_GPU_ALIAS: 'my gpu' });
    expect(bad.code).toBe(2);
    // The same error as kata-manager's for the same variable: one schema in @gpucc/daemon.
    expect(bad.err).toMatch(
      /ERR_GPUCC_INVALID_CONFIG.*--gpu-alias \(P_GPU_ALIAS\).*invalid resource name "nvidia.com\/my gpu"/s,
    );
    const same = await cli([
      'list',
      '--host-root',
      root,
      '--nvswitches',
      '--gpu-alias',
      'gpu',
      '--nvswitch-alias',
      'gpu',
    ]);
    expect(same.code).toBe(2);
    expect(same.err).toMatch(/ERR_GPUCC_INVALID_CONFIG.*would share the resource name and CDI kind nvidia.com\/gpu/);
    expect((await cli(['list', '--host-root', root, '--output', 'yaml'])).code).toBe(2);
    // One rule with kata-manager, with or without --nvswitches: an alias equal to the other's default too.
    for (const env of [{ P_GPU_ALIAS: 'nvswitch' }, { NVSWITCH_ALIAS: 'pgpu' }] as Array<Record<string, string>>) {
      const result = await cli(['list', '--host-root', root], env);
      expect(result.code).toBe(2);
      expect(result.err).toMatch(/ERR_GPUCC_INVALID_CONFIG: GPUs and NVSwitches would share the resource name/);
    }
  });
});

describe('sandbox-device-plugin run (the binary)', () => {
  it('registers, answers /healthz /readyz /metrics, and on SIGTERM withdraws its devices, removes its socket and exits 0', async () => {
    const { root } = await boundNode('hgx-h100-8');
    const kubelet = await startKubelet(root);
    const plugin = daemon(BIN, [
      'run',
      '--host-root',
      root,
      '--metrics-address',
      '127.0.0.1:0',
      '--log-format',
      'json',
    ]);
    const listen = JSON.parse(await plugin.waitFor((l) => l.includes('"http.listen"'))) as { port: number };
    await kubelet.waitFor((s) => s.resources['nvidia.com/pgpu']?.allocatable === 8);
    const base = `http://127.0.0.1:${listen.port}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    await plugin.waitFor((l) => l.includes('"stream.open"'));
    await plugin.waitFor((l) => l.includes('"kubelet.registered"'));
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/gpucc_device_plugin_devices\{resource="nvidia.com\/pgpu",health="Healthy"\} 8/);
    expect(metrics).toMatch(/gpucc_device_plugin_registered\{resource="nvidia.com\/pgpu"\} 1/);
    // The whole exposition reads as the text format says, its collectors and the process series included.
    expect(parseExposition(metrics).get('process_resident_memory_bytes')?.type).toBe('gauge');

    const capacities: number[] = [];
    kubelet.onChange(() => capacities.push(kubelet.state().resources['nvidia.com/pgpu']?.capacity ?? -1));
    plugin.child.kill('SIGTERM');
    expect(await plugin.exited).toBe(0);
    const after = await kubelet.waitFor((s) => s.resources['nvidia.com/pgpu']?.streaming === false);
    expect(capacities).toContain(0); // the empty list came before the stream ended
    expect(after.resources['nvidia.com/pgpu']).toMatchObject({ capacity: 0, allocatable: 0 });
    expect(localFs.listDir(path.join(root, DEVICE_PLUGIN_DIR)).sort()).toEqual(['kubelet.sock']);
    const events = plugin.lines.map((l) => (JSON.parse(l) as { event: string }).event);
    expect(events.indexOf('http.shutting-down')).toBeLessThan(events.indexOf('plugin.stop'));
  });

  it('a second instance refuses to start while the first serves, and takes nothing from it', async () => {
    const { root } = await boundNode('h100-pcie-1');
    const kubelet = await startKubelet(root);
    const args = ['run', '--host-root', root, '--metrics-address', '127.0.0.1:0', '--log-format', 'json'];
    const first = daemon(BIN, args);
    await kubelet.waitFor((s) => s.resources['nvidia.com/pgpu']?.allocatable === 1);
    await first.waitFor((l) => l.includes('"kubelet.registered"'));
    const second = daemon(BIN, args);
    expect(await second.exited).toBe(1);
    expect(second.stderr).toMatch(
      /ERR_GPUCC_PLUGIN_ALREADY_SERVING: another process serves \/var\/lib\/kubelet\/device-plugins\/sandbox-pgpu.sock/,
    );
    expect(kubelet.state().resources['nvidia.com/pgpu']).toMatchObject({ registrations: 1, streaming: true });
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
  });

  it('with gpucc-sim kubelet: status, allocate and restart through the fake kubelet’s commands', async () => {
    const { root } = await boundNode('h100-pcie-1');
    const kubelet = daemon(SIM, ['kubelet', root]);
    await kubelet.waitFor((l) => l.includes('listening on'));
    const plugin = daemon(BIN, [
      'run',
      '--host-root',
      root,
      '--metrics-address',
      '127.0.0.1:0',
      '--log-format',
      'json',
    ]);
    await kubelet.waitFor((l) => l.includes('nvidia.com/pgpu: 1 devices, 1 healthy'));

    const status = JSON.parse((await exec(process.execPath, [SIM, 'kubelet-status', root, '--output', 'json'])).stdout);
    expect(status.resources['nvidia.com/pgpu']).toMatchObject({ capacity: 1, allocatable: 1, registrations: 1 });
    const table = (await exec(process.execPath, [SIM, 'kubelet-status', root])).stdout;
    expect(table).toMatch(/nvidia\.com\/pgpu\s+sandbox-pgpu\.sock\s+yes\s+yes\s+1\s+1\s+1/);
    const allocation = JSON.parse(
      (await exec(process.execPath, [SIM, 'kubelet-allocate', root, 'nvidia.com/pgpu', '1'])).stdout,
    );
    expect(allocation).toMatchObject({ deviceIds: ['11'], response: { devices: [{}, { host_path: '/dev/vfio/11' }] } });
    await expect(exec(process.execPath, [SIM, 'kubelet-allocate', root, 'nvidia.com/pgpu', '1'])).rejects.toMatchObject(
      {
        code: 1,
        stderr: expect.stringMatching(/ERR_GPUCC_SIM_KUBELET_REFUSED: requested number of devices unavailable/),
      },
    );

    await exec(process.execPath, [SIM, 'kubelet-restart', root]);
    // Registered again, seen as the kubelet's restart or as our socket removed (whichever came first).
    await plugin.waitFor((l) => l.includes('"kubelet.registered"') && !l.includes('"reason":"start"'));
    const after = JSON.parse((await exec(process.execPath, [SIM, 'kubelet-status', root, '--output', 'json'])).stdout);
    expect(after).toMatchObject({ restarts: 1, allocations: [{ deviceIds: ['11'] }] });
    expect(after.resources['nvidia.com/pgpu'].registrations).toBe(2);

    plugin.child.kill('SIGTERM');
    expect(await plugin.exited).toBe(0);
    kubelet.child.kill('SIGTERM');
    expect(await kubelet.exited).toBe(0);
    const file = JSON.parse(localFs.readText(path.join(root, '.gpucc-sim/kubelet-status.json')));
    expect(file).toMatchObject({ listening: false, resources: { 'nvidia.com/pgpu': { streaming: false } } });
    await expect(exec(process.execPath, [SIM, 'kubelet-status', root])).rejects.toMatchObject({
      stderr: expect.stringMatching(/ERR_GPUCC_SIM_KUBELET_UNREACHABLE/),
    });
  });
});
