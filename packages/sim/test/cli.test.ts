import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { captureCli, simNode, tempDir } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli.js';
import { kernelPid } from '../src/kernel/index.js';
import { readFaults, readToolSettings } from '../src/node/state.js';

const BIN = path.resolve(import.meta.dirname, '../bin/gpucc-sim.mjs');

const run = (...args: string[]) => captureCli(main, 'gpucc-sim', args);

describe('gpucc-sim CLI', () => {
  it('creates a node and inspects it as a table and as JSON', async () => {
    const dir = path.join(tempDir(), 'node');
    const created = await run('create', dir, '--profile', 'hgx-h100-8', '--tee', 'tdx');
    expect(created.code).toBe(0);
    expect(created.out).toMatch(/profile hgx-h100-8, \d+ PCI functions, TEE tdx/);
    const table = await run('inspect', dir);
    expect(table.out).toMatch(/TEE tdx, IOMMU on, VFIO model legacy/);
    expect(table.out).toMatch(/0000:13:00\.0\s+gpu\s+10de:2330\s+030200\s+nvidia/);
    const json = JSON.parse((await run('inspect', dir, '--json')).out);
    expect(json.devices.filter((d: { kind: string }) => d.kind === 'gpu')).toHaveLength(8);
    expect(json.devices.filter((d: { kind: string }) => d.kind === 'nvswitch')).toHaveLength(4);
    expect(json.problems).toEqual([]);
  });

  it('create --vmd adds an Intel VMD controller with an NVMe drive in domain 10000, laid out as a real host', async () => {
    const dir = path.join(tempDir(), 'node');
    expect((await run('create', dir, '--profile', 'h100-pcie-1', '--vmd')).code).toBe(0);
    const table = await run('inspect', dir);
    expect(table.out).toMatch(/0000:d7:05\.5\s+other\s+8086:28c0\s+010400\s+vmd/);
    expect(table.out).toMatch(/10000:01:00\.0\s+other\s+8086:0a54\s+010802\s+nvme/);
    const controller = path.join(dir, 'sys/devices/pci0000:d7/0000:d7:05.5');
    expect(readlinkSync(path.join(dir, 'sys/bus/pci/devices/10000:01:00.0'))).toBe(
      '../../../devices/pci0000:d7/0000:d7:05.5/pci10000:00/10000:00:02.0/10000:01:00.0',
    );
    expect(readlinkSync(path.join(controller, 'domain'))).toBe('pci10000:00');
    expect(JSON.parse((await run('inspect', dir, '--json')).out).problems).toEqual([]);
  });

  it('create lays out the host facts: cpuinfo, os-release, lockdown and kernel release as asked, refusing nonsense', async () => {
    const dir = path.join(tempDir(), 'node');
    const created = await run(
      'create',
      dir,
      '--profile',
      'hgx-b200-8',
      '--tee',
      'none',
      '--cpu-tee',
      'tdx',
      '--lockdown',
      'integrity',
      '--kernel-release',
      '6.8.0-49-generic',
    );
    expect(created.code).toBe(0);
    const read = (rel: string) => readFileSync(path.join(dir, rel), 'utf8');
    expect(read('sys/kernel/security/lockdown')).toBe('none [integrity] confidentiality\n');
    expect(read('proc/sys/kernel/osrelease')).toBe('6.8.0-49-generic\n');
    expect(read('proc/cpuinfo')).toMatch(/^processor\t: 0\nvendor_id\t: GenuineIntel\n/);
    expect(read('proc/cpuinfo')).toMatch(/^flags\t\t: .* tdx_host_platform$/m);
    // The BIOS offers TDX, KVM was loaded without it.
    expect(read('sys/module/kvm_intel/parameters/tdx')).toBe('N\n');
    expect(read('etc/os-release')).toContain('PRETTY_NAME="Ubuntu 25.10"\n');

    const bare = path.join(tempDir(), 'bare');
    expect((await run('create', bare, '--profile', 'h100-pcie-1', '--lockdown', 'not-built')).code).toBe(0);
    expect(existsSync(path.join(bare, 'sys/kernel/security/lockdown'))).toBe(false);
    expect(readFileSync(path.join(bare, 'sys/kernel/security/lsm'), 'utf8')).not.toContain('lockdown');

    const other = path.join(tempDir(), 'other');
    expect((await run('create', other, '--profile', 'h100-pcie-1', '--lockdown', 'paranoid')).err).toMatch(
      /unknown lockdown level "paranoid"/,
    );
    expect((await run('create', other, '--profile', 'h100-pcie-1', '--kernel-release', '6.17 rc')).err).toMatch(
      /ERR_GPUCC_USAGE: kernel release "6.17 rc"/,
    );
    const mixed = await run('create', other, '--profile', 'h100-pcie-1', '--tee', 'sev-snp', '--cpu-tee', 'tdx');
    expect(mixed.code).toBe(2);
    expect(mixed.err).toMatch(/--cpu-tee tdx needs an intel CPU, and --tee sev-snp an amd one/);
  });

  it('break makes discovery report the damaged attribute by file and keep the other devices', async () => {
    const dir = path.join(tempDir(), 'node');
    await run('create', dir, '--profile', 'hgx-h100-8');
    expect(
      (await run('break', dir, '--device', '0000:13:00.0', '--attribute', 'vendor', '--value', 'notanid\n')).code,
    ).toBe(0);
    const json = JSON.parse((await run('inspect', dir, '--json')).out);
    expect(json.problems).toHaveLength(1);
    expect(json.problems[0].code).toBe('ERR_GPUCC_MALFORMED_ATTRIBUTE');
    expect(json.problems[0].message).toMatch(/0000:13:00\.0\/vendor/);
    expect(json.devices.filter((d: { kind: string }) => d.kind === 'gpu')).toHaveLength(7);
  });

  it('create refuses --gpus and --functions for a profile with a fixed set of devices, instead of ignoring them', async () => {
    const dir = path.join(tempDir(), 'node');
    const refused = await run('create', dir, '--profile', 'hgx-h100-8', '--gpus', '64');
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(/ERR_GPUCC_USAGE: profile hgx-h100-8 has a fixed set of devices: it takes no --gpus/);
    const scale = await run('create', dir, '--profile', 'scale', '--gpus', '3', '--functions', '1');
    expect(scale.code).toBe(0);
    expect(scale.out).toMatch(/profile scale, \d+ PCI functions/);
  });

  it('a malformed numa_node is a warning: the device is kept with it unknown', async () => {
    const dir = path.join(tempDir(), 'node');
    await run('create', dir, '--profile', 'hgx-h100-8');
    await run('break', dir, '--device', '0000:43:00.0', '--attribute', 'numa_node', '--value', 'banana');
    const json = JSON.parse((await run('inspect', dir, '--json')).out);
    expect(json.problems).toEqual([]);
    expect(json.devices.filter((d: { kind: string }) => d.kind === 'gpu')).toHaveLength(8);
    expect(json.warnings.map((w: { message: string }) => w.message)).toEqual([
      expect.stringMatching(/^0000:43:00\.0: numa_node is unknown: .*holds "banana"/),
    ]);
  });

  it('a missing optional attribute is tolerated; a missing required one is reported', async () => {
    const dir = path.join(tempDir(), 'node');
    await run('create', dir, '--profile', 'h100-pcie-1');
    await run('break', dir, '--device', '0000:41:00.0', '--attribute', 'numa_node', '--missing');
    let json = JSON.parse((await run('inspect', dir, '--json')).out);
    expect(json.problems).toEqual([]);
    expect(json.devices.find((d: { address: string }) => d.address === '0000:41:00.0').numaNode).toBe(-1);
    await run('break', dir, '--device', '0000:41:00.0', '--attribute', 'class', '--missing');
    json = JSON.parse((await run('inspect', dir, '--json')).out);
    expect(json.problems.map((p: { message: string }) => p.message).join()).toMatch(/0000:41:00\.0\/class/);
  });

  it('records faults and tool latencies, and refuses unknown kinds with exit 1', async () => {
    const dir = path.join(tempDir(), 'node');
    await run('create', dir, '--profile', 'h100-pcie-1');
    expect(
      (await run('fault', dir, '--kind', 'unbind-hang', '--device', '0000:41:00.0', '--delay-ms', '500')).code,
    ).toBe(0);
    expect(readFaults(dir)).toEqual([{ kind: 'unbind-hang', device: '0000:41:00.0', delayMs: 500 }]);
    const bad = await run('fault', dir, '--kind', 'explode');
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/ERR_GPUCC_SIM_INVALID_FAULT/);
    await run('fault', dir, '--clear');
    expect(readFaults(dir)).toEqual([]);
    await run('tool-latency', dir, '--reset-ms', '1700');
    expect(readToolSettings(dir).resetMs).toBe(1700);
  });

  it('kernel --stop stops the node’s kernel process that a write started, and says when none runs', async () => {
    const { root, sysfs } = simNode('hgx-h100-8', { kernel: 'process' });
    expect((await run('kernel', root, '--stop')).out).toBe('no kernel was running\n');
    await sysfs.write('sys/bus/pci/devices/0000:13:00.0/power/control', 'on');
    const pid = kernelPid(root)!;
    expect((await run('kernel', root, '--stop')).out).toBe(`kernel (pid ${pid}) stopped\n`);
    expect(() => process.kill(pid, 0)).toThrow();
    expect((await run('writes', root)).out).toMatch(/0000:13:00\.0\/power\/control <- "on": ok\n$/);
  });

  it('exits 2 on bad usage and 1 on a directory that is not a simulated node', async () => {
    expect((await run('create', path.join(tempDir(), 'x'))).code).toBe(2); // --profile missing
    expect((await run('create', path.join(tempDir(), 'x'), '--profile', 'hgx-h100-8', '--tee', 'sgx')).code).toBe(2);
    const notSim = await run('fault', tempDir(), '--kind', 'bind-error');
    expect(notSim.code).toBe(1);
    expect(notSim.err).toMatch(/ERR_GPUCC_SIM_NOT_SIMULATED[\s\S]*hint: create one/);
    expect((await run('profiles')).out).toMatch(/^workstation-mixed/m);
  });

  it('runs as an executable (what `pnpm exec gpucc-sim` starts) and lists the writes of the simulated kernel', () => {
    const dir = path.join(tempDir(), 'node');
    execFileSync(BIN, ['create', dir, '--profile', 'iommufd-h200-2']);
    const out = execFileSync(BIN, ['inspect', dir], { encoding: 'utf8' });
    expect(out).toMatch(/VFIO model iommufd/);
    expect(execFileSync(BIN, ['writes', dir], { encoding: 'utf8' })).toBe('');
    const legacy = path.join(tempDir(), 'legacy');
    execFileSync(BIN, ['create', legacy, '--profile', 'iommufd-h200-2', '--no-iommufd']);
    expect(execFileSync(BIN, ['inspect', legacy], { encoding: 'utf8' })).toMatch(/VFIO model legacy/);
    const noCdev = path.join(tempDir(), 'no-cdev');
    execFileSync(BIN, ['create', noCdev, '--profile', 'iommufd-h200-2', '--no-vfio-cdev']);
    expect(existsSync(path.join(noCdev, 'dev/iommu'))).toBe(true);
    expect(existsSync(path.join(noCdev, 'dev/vfio/devices'))).toBe(false);
  });

  it('ends quietly with exit 0 when its reader goes away (`gpucc-sim label DIR | head -1`)', () => {
    const dir = path.join(tempDir(), 'node');
    execFileSync(BIN, ['create', dir, '--profile', 'h100-pcie-1']);
    // The shell's pipe: head reads one line and exits, so later writes of gpucc-sim get EPIPE.
    const piped = execFileSync(
      'bash',
      ['-c', `node "${BIN}" label "${dir}" | head -1 >/dev/null; echo "\${PIPESTATUS[0]}"`],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    expect(piped.trim()).toBe('0');
  });
});
