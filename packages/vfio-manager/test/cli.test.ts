import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { discoverPci, HostRoot } from '@gpucc/hal';
import { injectFault, readWriteLog } from '@gpucc/sim';
import { simNode } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import { readState } from '../src/state.js';

const BIN = path.resolve(import.meta.dirname, '../bin/vfio-manager.mjs');
const exec = promisify(execFile);

async function vfio(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await exec(process.execPath, [BIN, ...args], {
      env: { ...process.env, ...env },
      timeout: 30_000,
    });
    return { code: 0, stdout, stderr, signal: null as string | null };
  } catch (error) {
    const e = error as { code: number | null; signal: string | null; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr, signal: e.signal };
  }
}

async function until(test: () => boolean | Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

const driversOf = (root: string) =>
  Object.fromEntries(
    discoverPci(new HostRoot(root))
      .devices.filter((d) => d.vendor === 0x10de || d.vendor === 0x15b3)
      .map((d) => [d.address, [d.driver ?? null, d.driverOverride ?? null]]),
  );

describe('vfio-manager binary', () => {
  it('bind --all converges (exit 0), status says so, and a second bind writes nothing', async () => {
    const { root } = simNode('hgx-h100-8');
    const bound = await vfio(['bind', '--all', '--host-root', root]);
    expect(bound.code).toBe(0);
    expect(bound.stdout).toMatch(/0000:13:00\.0\s+bound\s+vfio-pci/);
    const status = JSON.parse((await vfio(['status', '--output', 'json', '--host-root', root])).stdout);
    expect(status.converged).toBe(true);
    // the board, not only the chip: H100 SXM5 10de:2330 with subsystem 10de:16c1, NVSwitch 10de:1796
    const subsystemOf = (address: string) =>
      status.devices.find((d: { address: string }) => d.address === address)?.subsystemId;
    expect([subsystemOf('0000:13:00.0'), subsystemOf('0000:07:00.0')]).toEqual(['10de:16c1', '10de:1796']);
    expect(
      status.devices.filter((d: { kind: string; driver: string }) => d.kind === 'gpu' && d.driver === 'vfio-pci'),
    ).toHaveLength(8);
    const writes = readWriteLog(root).length;
    expect((await vfio(['bind', '--all'], { GPUCC_HOST_ROOT: root })).code).toBe(0);
    expect(readWriteLog(root).length).toBe(writes);
  });

  it('NVSwitches are targets by default (HGX CC pods need them); --no-nvswitches or GPUCC_NVSWITCHES=false leaves them', async () => {
    const { root } = simNode('hgx-h100-8');
    const switches = async (args: string[], env: Record<string, string> = {}) => {
      const status = JSON.parse((await vfio(['status', '--output', 'json', '--host-root', root, ...args], env)).stdout);
      // on the host driver: a target does not match the desired state yet, a left-out switch does
      return status.devices.filter(
        (d: { kind: string; matchesDesired: boolean }) => d.kind === 'nvswitch' && !d.matchesDesired,
      ).length;
    };
    expect(await switches([])).toBe(4);
    expect(await switches(['--no-nvswitches'])).toBe(0);
    expect(await switches([], { GPUCC_NVSWITCHES: 'false' })).toBe(0);
    expect(await switches(['--nvswitches'], { GPUCC_NVSWITCHES: 'false' })).toBe(4); // a flag wins
  });

  it('plan prints the writes and why, and writes nothing', async () => {
    const { root } = simNode('workstation-mixed');
    const plan = await vfio(['plan', '--device', '0000:01:00.0', '--host-root', root]);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toMatch(
      /0000:01:00\.1\s+10de:10f8\s+snd_hda_intel\s+vfio-pci\s+3\s+another function of the same card/,
    );
    expect(plan.stdout).toMatch(/\/sys\/bus\/pci\/drivers\/xhci_hcd\/unbind <- "0000:01:00.2"/);
    expect(readWriteLog(root)).toEqual([]);
    const json = JSON.parse((await vfio(['plan', '--all', '--output', 'json', '--host-root', root])).stdout);
    expect(json.groups.find((g: { group: number }) => g.group === 30).refused.code).toBe(
      'ERR_GPUCC_FOREIGN_GROUP_MEMBER',
    );
  });

  it.each([
    [['bind', '--device', '0000:99:00.0'], 2, /ERR_GPUCC_DEVICE_NOT_FOUND/],
    [['bind', '--device', '13:00.0'], 2, /ERR_GPUCC_INVALID_PCI_ADDRESS[\s\S]*hint: add the PCI domain/],
    [['bind'], 2, /give --all or --device/],
    [['bind', '--all', '--output', 'xml'], 2, /--output \(GPUCC_OUTPUT\)/],
    [['bind', '--all', '--bogus'], 2, /unknown option/],
    // unbind loads no module and waits for no device node: those flags are not its own
    [['unbind', '--all', '--load-modules'], 2, /unknown option '--load-modules'/],
    [['unbind', '--all', '--modprobe', '/sbin/modprobe'], 2, /unknown option '--modprobe'/],
    [['unbind', '--all', '--device-node-timeout', '5'], 2, /unknown option '--device-node-timeout'/],
  ])('%j exits %i with a clear error and writes nothing', async (args, code, message) => {
    const { root } = simNode('hgx-h100-8');
    const result = await vfio([...args, '--host-root', root]);
    expect(result.code).toBe(code);
    expect(result.stderr).toMatch(message);
    expect(readWriteLog(root)).toEqual([]);
  });

  it('no-iommu: exit 1, the refusal explained, nothing written', async () => {
    const { root } = simNode('no-iommu');
    const result = await vfio(['bind', '--all', '--host-root', root]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/refused.*ERR_GPUCC_IOMMU_OFF/);
    expect(readWriteLog(root)).toEqual([]);
  });

  it('env mirrors flags: GPUCC_ALL and GPUCC_HOST_ROOT; a flag wins over its variable', async () => {
    const { root } = simNode('h100-pcie-1');
    expect(
      (await vfio(['bind', '--dry-run', '--output', 'json'], { GPUCC_ALL: 'true', GPUCC_HOST_ROOT: root })).code,
    ).toBe(0);
    const bad = await vfio(['bind', '--all', '--output', 'json', '--host-root', root], { GPUCC_DRY_RUN: 'maybe' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/GPUCC_DRY_RUN/);
  });

  it('a process killed after any sysfs write converges on the next run, and restore still knows every driver', async () => {
    // The workstation card: 4 functions in one group, 12 writes in all; kill after each of them.
    for (let n = 1; n <= 12; n++) {
      const { root } = simNode('workstation-mixed');
      const before = driversOf(root);
      await injectFault(root, { kind: 'kill-after-writes', afterWrites: n });
      const killed = await vfio(['bind', '--device', '0000:01:00.0', '--host-root', root]);
      expect(killed.signal, `kill after write ${n}`).toBe('SIGKILL');
      const rerun = await vfio(['bind', '--device', '0000:01:00.0', '--host-root', root]);
      expect(rerun.code, `rerun after kill at write ${n}: ${rerun.stdout}${rerun.stderr}`).toBe(0);
      for (const fn of ['0000:01:00.0', '0000:01:00.1', '0000:01:00.2', '0000:01:00.3']) {
        expect(driversOf(root)[fn], `${fn} after kill at ${n}`).toEqual(['vfio-pci', 'vfio-pci']);
      }
      const phases = Object.values(readState(new HostRoot(root)).devices).map((r) => r.phase);
      expect(phases, `state after the rerun, kill at ${n}`).toEqual(Array(4).fill('bound'));
      const restored = await vfio(['unbind', '--device', '0000:01:00.0', '--restore', '--host-root', root]);
      expect(restored.code, restored.stdout).toBe(0);
      expect(driversOf(root), `restore after kill at ${n}`).toEqual(before);
    }
  }, 120_000);
});

describe('vfio-manager run', () => {
  async function start(root: string, extra: string[] = []) {
    const child = spawn(process.execPath, [
      BIN,
      'run',
      '--host-root',
      root,
      '--metrics-address',
      '127.0.0.1:0',
      '--log-format',
      'json',
      ...extra,
    ]);
    const lines: Array<Record<string, unknown>> = [];
    const waiters: Array<{
      test: (l: Record<string, unknown>) => boolean;
      resolve: (l: Record<string, unknown>) => void;
    }> = [];
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      lines.push(parsed);
      for (const w of [...waiters])
        if (w.test(parsed)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(parsed);
        }
    });
    /** The first line matching, among lines logged from index `since` on. */
    const waitFor = (test: (l: Record<string, unknown>) => boolean, since = 0) =>
      new Promise<Record<string, unknown>>((resolve) => {
        const found = lines.slice(since).find(test);
        if (found) resolve(found);
        else waiters.push({ test, resolve });
      });
    const port = (await waitFor((l) => l.event === 'http.listen')).port as number;
    return { child, lines, waitFor, url: (p: string) => `http://127.0.0.1:${port}${p}` };
  }

  const exitOf = (child: ChildProcess) =>
    new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));

  it('converges, turns ready, writes the readiness marker, repairs drift, and on SIGTERM exits 0 leaving bindings alone', async () => {
    const { root } = simNode('hgx-h100-8');
    const daemon = await start(root, ['--resync-interval', '600000']);
    try {
      await daemon.waitFor((l) => l.event === 'reconcile.done');
      expect((await fetch(daemon.url('/readyz'))).status).toBe(200);
      expect(readFileSync(path.join(root, 'run/nvidia/validations/vfio-pci-ready'), 'utf8')).toBe('');
      expect(await (await fetch(daemon.url('/metrics'))).text()).toMatch(/gpucc_ready 1/);
      expect(daemon.lines[0]).toMatchObject({ event: 'host.simulated' });

      // drift: someone puts a GPU back on nvidia; its /dev/vfio node vanishes and the daemon repairs it
      const { openSimulatedHost } = await import('@gpucc/sim');
      const sim = openSimulatedHost(root);
      await sim.write('sys/bus/pci/devices/0000:23:00.0/driver_override', '\n');
      await sim.write('sys/bus/pci/drivers/vfio-pci/unbind', '0000:23:00.0');
      await sim.write('sys/bus/pci/drivers/nvidia/bind', '0000:23:00.0').catch(() => {}); // the daemon may win the race
      await until(() => driversOf(root)['0000:23:00.0']?.[0] === 'vfio-pci');
      expect(driversOf(root)['0000:23:00.0']).toEqual(['vfio-pci', 'vfio-pci']);
      await until(async () => (await fetch(daemon.url('/readyz'))).status === 200);
      const before = driversOf(root);
      daemon.child.kill('SIGTERM');
      expect(await exitOf(daemon.child)).toBe(0);
      expect(driversOf(root)).toEqual(before);
    } finally {
      daemon.child.kill('SIGKILL');
    }
  }, 30_000);

  it('watches /dev/vfio once it appears (the vfio module loaded by the first reconcile) and repairs drift there', async () => {
    // A host where not even the vfio core is loaded: no /dev/vfio until modprobe vfio_pci pulls it in.
    const { root } = simNode('h100-pcie-1', { vfioLoaded: false });
    for (const dir of ['dev/vfio', 'sys/module/vfio']) rmSync(path.join(root, dir), { recursive: true });
    const daemon = await start(root, ['--resync-interval', '600000', '--load-modules']);
    try {
      await daemon.waitFor((l) => l.event === 'reconcile.done');
      expect(driversOf(root)['0000:41:00.0']?.[0]).toBe('vfio-pci');
      expect(existsSync(path.join(root, 'dev/vfio/11'))).toBe(true);
      // drift: the GPU goes back to nvidia by hand; only the /dev/vfio watch can notice before the resync
      const { openSimulatedHost } = await import('@gpucc/sim');
      const sim = openSimulatedHost(root);
      await sim.write('sys/bus/pci/devices/0000:41:00.0/driver_override', '\n');
      await sim.write('sys/bus/pci/drivers/vfio-pci/unbind', '0000:41:00.0');
      await sim.write('sys/bus/pci/drivers/nvidia/bind', '0000:41:00.0').catch(() => {}); // the daemon may win
      await until(() => driversOf(root)['0000:41:00.0']?.[0] === 'vfio-pci');
    } finally {
      daemon.child.kill('SIGTERM');
      await exitOf(daemon.child);
    }
  }, 30_000);

  it('iommufd-h200-2: watches /dev/vfio/devices, so a vanished vfioN turns it unready at once', async () => {
    const { root } = simNode('iommufd-h200-2');
    const daemon = await start(root, ['--resync-interval', '600000', '--device-node-timeout', '200']);
    try {
      await daemon.waitFor((l) => l.event === 'reconcile.done');
      expect((await fetch(daemon.url('/readyz'))).status).toBe(200);
      rmSync(path.join(root, 'dev/vfio/devices/vfio0')); // udev removed it, or someone did by hand
      await until(async () => (await fetch(daemon.url('/readyz'))).status === 503);
      expect(existsSync(path.join(root, 'run/nvidia/validations/vfio-pci-ready'))).toBe(false);
    } finally {
      daemon.child.kill('SIGTERM');
      await exitOf(daemon.child);
    }
  }, 30_000);

  it('waits for a command that holds the host lock, fails that reconcile with ERR_GPUCC_LOCKED, and retries', async () => {
    const { root } = simNode('h100-pcie-1');
    expect((await vfio(['bind', '--all', '--host-root', root])).code).toBe(0);
    // a restore that hangs 4 s in its unbind holds the lock meanwhile
    await injectFault(root, { kind: 'unbind-hang', device: '0000:41:00.0', delayMs: 4000, times: 1 });
    const restore = vfio(['unbind', '--all', '--restore', '--host-root', root]);
    await until(() => existsSync(path.join(root, 'var/lib/gpucc/vfio-manager.lock')));
    const daemon = await start(root, ['--resync-interval', '600000', '--lock-timeout', '200']);
    try {
      const failed = await daemon.waitFor((l) => l.event === 'reconcile.failed');
      expect(JSON.stringify(failed.err)).toContain('ERR_GPUCC_LOCKED');
      expect((await restore).code).toBe(0);
      // the retry after the backoff binds what the restore released
      await daemon.waitFor((l) => l.event === 'reconcile.done');
      expect(driversOf(root)['0000:41:00.0']).toEqual(['vfio-pci', 'vfio-pci']);
    } finally {
      daemon.child.kill('SIGTERM');
      await exitOf(daemon.child);
    }
  }, 30_000);

  it('stays unready with a reason while a device cannot be bound, and retries', async () => {
    const { root } = simNode('h100-pcie-1');
    await injectFault(root, { kind: 'bind-error', device: '0000:41:00.0', errno: 'EIO', times: 1 });
    const daemon = await start(root, ['--resync-interval', '600000']);
    try {
      await daemon.waitFor((l) => l.event === 'reconcile.failed');
      // the backoff retry (1 s) converges once the fault is used up
      await daemon.waitFor((l) => l.event === 'reconcile.done');
      expect((await fetch(daemon.url('/readyz'))).status).toBe(200);
    } finally {
      daemon.child.kill('SIGTERM');
      await exitOf(daemon.child);
    }
  }, 30_000);
});
