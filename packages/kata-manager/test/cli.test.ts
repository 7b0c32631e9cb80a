import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { bindToVfio, parseExposition } from '@gpucc/testbed/fixtures';
import { boundNode, simNode, tempDir } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';

const BIN = path.resolve(import.meta.dirname, '../bin/kata-manager.mjs');
const exec = promisify(execFile);

/** Runs the binary; env entries set to undefined are removed from the environment. */
async function kata(args: string[], env: Record<string, string | undefined> = {}) {
  const merged: Record<string, string | undefined> = {
    ...process.env,
    P_GPU_ALIAS: undefined,
    NVSWITCH_ALIAS: undefined,
    ...env,
  };
  const clean = Object.fromEntries(Object.entries(merged).filter(([, v]) => v !== undefined)) as Record<string, string>;
  try {
    const { stdout, stderr } = await exec(process.execPath, [BIN, ...args], { env: clean, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number | null; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function until(test: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error(`not reached in time: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const cdiFiles = (root: string, dir = 'var/run/cdi') =>
  existsSync(path.join(root, dir)) ? readdirSync(path.join(root, dir)).sort() : [];
const specNames = (root: string, file = 'nvidia.com-pgpu_gpucc.yaml') => {
  const p = path.join(root, 'var/run/cdi', file);
  return existsSync(p) ? [...readFileSync(p, 'utf8').matchAll(/name: "(\d+)"/g)].map((m) => m[1]) : [];
};

describe('kata-manager generate', () => {
  it('prints every spec as YAML documents, and one kind as a loadable JSON file', async () => {
    const { root } = await boundNode('hgx-h100-8', { nvswitches: true, iommufd: false });
    const all = await kata(['generate', '--host-root', root]);
    expect(all.code).toBe(0);
    expect(all.stdout.split('\n---\n').map((d) => /kind: (\S+)/.exec(d)?.[1])).toEqual([
      'nvidia.com/nvswitch',
      'nvidia.com/pgpu',
    ]);
    const one = await kata(['generate', '--kind', 'nvidia.com/pgpu', '--format', 'json', '--host-root', root]);
    expect(one.code).toBe(0);
    const spec = JSON.parse(one.stdout);
    expect(spec).toMatchObject({ cdiVersion: '0.5.0', kind: 'nvidia.com/pgpu' });
    expect(spec.devices.map((d: { name: string }) => d.name)).toEqual(['23', '27', '31', '35', '39', '43', '47', '51']);
    expect(cdiFiles(root)).toEqual([]); // generate writes nothing
  });

  it('--output FILE writes one spec (JSON for a .json name) and refuses several kinds without --kind', async () => {
    const { root } = await boundNode('hgx-h100-8', { nvswitches: true, iommufd: false });
    const out = path.join(tempDir(), 'pgpu.json');
    const two = await kata(['generate', '--output', out, '--host-root', root]);
    expect(two.code).toBe(2);
    expect(two.stderr).toMatch(/2 specs \(nvidia\.com\/nvswitch, nvidia\.com\/pgpu\).*add --kind/);
    expect(existsSync(out)).toBe(false);
    const one = await kata(['generate', '--output', out, '--kind', 'nvidia.com/pgpu', '--host-root', root]);
    expect(one.code).toBe(0);
    expect(JSON.parse(readFileSync(out, 'utf8')).devices).toHaveLength(8);
  });

  it('a node with nothing on VFIO prints nothing and exits 0; asking for a file or a kind exits 1', async () => {
    const { root } = simNode('h100-pcie-1');
    const none = await kata(['generate', '--host-root', root]);
    expect(none).toMatchObject({ code: 0, stdout: '' });
    const file = await kata(['generate', '--output', path.join(tempDir(), 'x.yaml'), '--host-root', root]);
    expect(file.code).toBe(1);
    expect(file.stderr).toMatch(/ERR_GPUCC_CDI_NO_DEVICES[\s\S]*hint: bind the GPUs to VFIO first/);
  });

  it('P_GPU_ALIAS: unset is pgpu, "" is per model, a flag wins, an invalid one exits 2 naming the variable', async () => {
    const { root } = await boundNode('h100-pcie-1', { nvswitches: true, iommufd: false });
    const kindOf = (stdout: string) => /kind: (\S+)/.exec(stdout)?.[1];
    expect(kindOf((await kata(['generate', '--host-root', root])).stdout)).toBe('nvidia.com/pgpu');
    expect(kindOf((await kata(['generate', '--host-root', root], { P_GPU_ALIAS: '' })).stdout)).toBe(
      'nvidia.com/GH100_H100_PCIE',
    );
    expect(kindOf((await kata(['generate', '--host-root', root], { P_GPU_ALIAS: 'h100' })).stdout)).toBe(
      'nvidia.com/h100',
    );
    expect(
      kindOf((await kata(['generate', '--gpu-alias', 'gpu', '--host-root', root], { P_GPU_ALIAS: '' })).stdout),
    ).toBe('nvidia.com/gpu');
    const bad = await kata(['generate', '--host-root', root], { P_GPU_ALIAS: 'h100.sxm' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/ERR_GPUCC_INVALID_CONFIG.*--gpu-alias \(P_GPU_ALIAS\)/);
  });

  it('refuses GPUs and NVSwitches under one kind (exit 2, the device plugin’s error), writing nothing', async () => {
    const { root } = await boundNode('hgx-h100-8', { nvswitches: true });
    for (const env of [
      { P_GPU_ALIAS: 'nvswitch' },
      { NVSWITCH_ALIAS: 'pgpu' },
      { P_GPU_ALIAS: 'x', NVSWITCH_ALIAS: 'x' },
    ]) {
      const result = await kata(['write', '--host-root', root], env);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/ERR_GPUCC_INVALID_CONFIG: GPUs and NVSwitches would share the resource name/);
    }
    expect(cdiFiles(root)).toEqual([]);
  });
});

describe('kata-manager write', () => {
  it('writes, converges, removes the old kind on an alias change, and reports in JSON', async () => {
    const { root } = await boundNode('hgx-h100-8', { nvswitches: true, iommufd: true });
    const first = await kata(['write', '--host-root', root]);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/\/var\/run\/cdi\/nvidia\.com-pgpu_gpucc\.yaml\s+nvidia\.com\/pgpu\s+8\s+written/);
    expect(cdiFiles(root)).toEqual(['nvidia.com-nvswitch_gpucc.yaml', 'nvidia.com-pgpu_gpucc.yaml']);

    const again = await kata(['write', '--report', 'json', '--host-root', root]);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout).specs.map((s: { outcome: string }) => s.outcome)).toEqual([
      'unchanged',
      'unchanged',
    ]);

    const renamed = await kata(['write', '--host-root', root], { P_GPU_ALIAS: '', NVSWITCH_ALIAS: 'switch' });
    expect(renamed.code).toBe(0);
    expect(cdiFiles(root)).toEqual(['nvidia.com-GH100_H100_SXM5_80GB_gpucc.yaml', 'nvidia.com-switch_gpucc.yaml']);
  });

  it('--dry-run prints the plan and writes nothing; a foreign file with our name exits 1 and is kept', async () => {
    const { root } = await boundNode('h100-pcie-1', { nvswitches: true, iommufd: false });
    const dry = await kata(['write', '--dry-run', '--host-root', root]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/nvidia\.com-pgpu_gpucc\.yaml\s+nvidia\.com\/pgpu\s+1\s+write \(new\)/);
    expect(dry.stdout).toMatch(/nvidia\.com\/pgpu=11\s+0000:41:00\.0\s+\/dev\/vfio\/vfio,\/dev\/vfio\/11/);
    expect(cdiFiles(root)).toEqual([]);

    mkdirSync(path.join(root, 'var/run/cdi'), { recursive: true });
    writeFileSync(path.join(root, 'var/run/cdi/nvidia.com-pgpu_gpucc.yaml'), 'kind: nvidia.com/pgpu\n');
    const refused = await kata(['write', '--host-root', root]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/ERR_GPUCC_CDI_SPEC_NOT_OURS[\s\S]*hint: run one CDI writer per node/);
    expect(readFileSync(path.join(root, 'var/run/cdi/nvidia.com-pgpu_gpucc.yaml'), 'utf8')).toBe(
      'kind: nvidia.com/pgpu\n',
    );
  });

  it.each([
    [['--cdi-dir', 'var/run/cdi'], /--cdi-dir \(GPUCC_CDI_DIR\).*absolute/],
    [['--cdi-dir', '/var/run/../../cdi'], /must not contain \.\./],
    [['--report', 'yaml'], /--report \(GPUCC_REPORT\)/],
    [['--bogus'], /unknown option/],
  ])('%j exits 2 with a clear error and writes nothing', async (args, message) => {
    const { root } = await boundNode('h100-pcie-1', { nvswitches: true, iommufd: false });
    const result = await kata(['write', ...args, '--host-root', root]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(cdiFiles(root)).toEqual([]);
  });
});

describe('kata-manager run', () => {
  async function start(root: string, extra: string[] = [], env: Record<string, string> = {}) {
    const child = spawn(
      process.execPath,
      [BIN, 'run', '--host-root', root, '--metrics-address', '127.0.0.1:0', '--log-format', 'json', ...extra],
      { env: { ...process.env, ...env } },
    );
    const lines: Array<Record<string, unknown>> = [];
    let stderr = '';
    child.stderr!.on('data', (d) => {
      stderr += String(d);
    });
    createInterface({ input: child.stdout! }).on('line', (line) => lines.push(JSON.parse(line)));
    await until(() => lines.some((l) => l.event === 'http.listen') || child.exitCode !== null, 'listening');
    const listen = lines.find((l) => l.event === 'http.listen');
    if (!listen) throw new Error(`run exited early: ${stderr}`);
    const url = (p: string) => `http://127.0.0.1:${listen.port as number}${p}`;
    return { child, lines, url, stderr: () => stderr };
  }
  const exitOf = (child: ChildProcess) =>
    new Promise<number | null>((resolve) => {
      if (child.exitCode !== null) resolve(child.exitCode);
      else child.on('exit', (code) => resolve(code));
    });

  it('follows binds and unbinds by their device nodes (no resync), serves health and metrics, keeps specs on SIGTERM', async () => {
    const { root, sysfs } = simNode('hgx-h100-8', { iommufd: false });
    await bindToVfio(sysfs, '0000:13:00.0'); // group 23
    const daemon = await start(root, ['--resync-interval', '600000', '--log-level', 'debug']);
    const cdiTriggers = () =>
      daemon.lines.filter((l) => l.event === 'reconcile.trigger' && /var\/run\/cdi\/nvidia/.test(String(l.reason)));
    try {
      await until(() => specNames(root).join() === '23', 'the first spec');
      await until(async () => (await fetch(daemon.url('/readyz'))).status === 200, 'ready');
      expect((await fetch(daemon.url('/healthz'))).status).toBe(200);
      expect(daemon.lines[0]).toMatchObject({ event: 'host.simulated' });

      await bindToVfio(sysfs, '0000:33:00.0'); // group 31
      await until(() => specNames(root).join() === '23,31', 'bind followed');
      await bindToVfio(sysfs, '0000:23:00.0'); // group 27
      await until(() => specNames(root).join() === '23,27,31', 'second bind followed');

      await sysfs.write('sys/bus/pci/drivers/vfio-pci/unbind', '0000:13:00.0');
      await until(() => specNames(root).join() === '27,31', 'unbind followed');

      // Our own writes wake nothing; someone deleting our file does, and it comes back.
      expect(cdiTriggers()).toEqual([]);
      rmSync(path.join(root, 'var/run/cdi/nvidia.com-pgpu_gpucc.yaml'));
      await until(() => specNames(root).join() === '27,31', 'restored after deletion');
      expect(cdiTriggers().length).toBeGreaterThan(0);

      // Every device leaves: the file goes, no empty spec is left behind.
      await sysfs.write('sys/bus/pci/drivers/vfio-pci/unbind', '0000:23:00.0');
      await sysfs.write('sys/bus/pci/drivers/vfio-pci/unbind', '0000:33:00.0');
      await until(() => cdiFiles(root).length === 0, 'removed with the last device');
      await bindToVfio(sysfs, '0000:43:00.0'); // group 35
      await until(() => specNames(root).join() === '35', 'back with a new device');

      const metrics = await (await fetch(daemon.url('/metrics'))).text();
      expect(metrics).toMatch(/gpucc_cdi_devices\{kind="nvidia.com\/pgpu"\} 1/);
      expect(metrics).toMatch(/gpucc_cdi_spec_updates_total\{outcome="removed"\} 1/);
      expect(metrics).toMatch(/gpucc_ready 1/);
      // The whole exposition reads as the text format says, its collectors and the process series included.
      expect(parseExposition(metrics).get('process_resident_memory_bytes')?.type).toBe('gauge');
      expect(daemon.lines.filter((l) => l.event === 'reconcile.trigger' && /resync/.test(String(l.reason)))).toEqual(
        [],
      );

      daemon.child.kill('SIGTERM');
      expect(await exitOf(daemon.child)).toBe(0);
      expect(specNames(root)).toEqual(['35']); // a restart never makes devices unresolvable
      expect(daemon.lines.at(-1)).toMatchObject({ event: 'daemon.stop' });
    } finally {
      daemon.child.kill('SIGKILL');
    }
  }, 30_000);

  it('iommufd: publishes each new vfio cdev as it appears', async () => {
    const { root, sysfs } = simNode('iommufd-h200-2');
    const daemon = await start(root, ['--resync-interval', '600000']);
    try {
      await until(async () => (await fetch(daemon.url('/readyz'))).status === 200, 'ready with no device');
      expect(cdiFiles(root)).toEqual([]);
      await bindToVfio(sysfs, '0000:43:00.0');
      await until(() => specNames(root).join() === '0', 'first cdev');
      await bindToVfio(sysfs, '0000:23:00.0');
      await until(() => specNames(root).join() === '0,1', 'second cdev');
      expect(readFileSync(path.join(root, 'var/run/cdi/nvidia.com-pgpu_gpucc.yaml'), 'utf8')).toContain(
        '- path: /dev/vfio/devices/vfio1',
      );
    } finally {
      daemon.child.kill('SIGTERM');
      await exitOf(daemon.child);
    }
  }, 30_000);

  it('an alias change at restart removes the old file; a foreign file with our name keeps it unready', async () => {
    const { root } = await boundNode('h100-pcie-1', { nvswitches: true, iommufd: false });
    const first = await start(root);
    await until(() => cdiFiles(root).join() === 'nvidia.com-pgpu_gpucc.yaml', 'default kind');
    first.child.kill('SIGTERM');
    expect(await exitOf(first.child)).toBe(0);

    const second = await start(root, [], { P_GPU_ALIAS: '' });
    try {
      await until(() => cdiFiles(root).join() === 'nvidia.com-GH100_H100_PCIE_gpucc.yaml', 'per-model kind only');
      second.child.kill('SIGTERM');
      expect(await exitOf(second.child)).toBe(0);
    } finally {
      second.child.kill('SIGKILL');
    }

    writeFileSync(path.join(root, 'var/run/cdi/nvidia.com-pgpu_gpucc.yaml'), 'kind: nvidia.com/pgpu\n');
    const third = await start(root);
    try {
      await until(() => third.lines.some((l) => l.event === 'reconcile.failed'), 'a failed reconcile');
      const ready = await fetch(third.url('/readyz'));
      expect(ready.status).toBe(503);
      expect(await ready.text()).toMatch(/ERR_GPUCC_CDI_SPEC_NOT_OURS/);
      expect(third.lines.find((l) => l.event === 'spec.refused')).toMatchObject({
        file: '/var/run/cdi/nvidia.com-pgpu_gpucc.yaml',
      });
      // Its per-model file from before is ours and no longer wanted: removed all the same.
      expect(cdiFiles(root)).toEqual(['nvidia.com-pgpu_gpucc.yaml']);
    } finally {
      third.child.kill('SIGTERM');
      await exitOf(third.child);
    }
  }, 30_000);
});
