import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type RunToolOptions, runTool } from '@gpucc/hal';
import { injectFault, readWriteLog } from '@gpucc/sim';
import { bindAll, silentLogger } from '@gpucc/testbed/fixtures';
import { simNode, tempDir } from '@gpucc/testbed/vitest';
import { describe, expect, it, vi } from 'vitest';
import { gpuAdminToolsBackend } from '../src/backend/gpu-admin-tools.js';
import { DEFAULT_CAPABILITY } from '../src/capability.js';
import { main } from '../src/cli.js';
import { type DoctorObservation, type DoctorTools, doctor, observeDoctor, runChecks } from '../src/doctor/index.js';
import { H100_GPUS, NVSWITCHES } from './helpers.js';

const NFD_FILE = '/etc/kubernetes/node-feature-discovery/features.d/gpucc';

/** The real CLI in-process: stdout, stderr and the exit code a user would see. */
async function doctorCli(args: string[], env: Record<string, string> = {}) {
  let out = '';
  let err = '';
  const saved = { ...process.env };
  for (const key of Object.keys(process.env)) if (key.startsWith('GPUCC_')) delete process.env[key];
  Object.assign(process.env, env);
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    err += String(chunk);
    return true;
  });
  try {
    const code = await main(['node', 'cc-manager', 'doctor', ...args], (t) => {
      out += t;
    });
    return { code, out, err };
  } finally {
    spy.mockRestore();
    process.env = saved;
  }
}

async function doctorJson(root: string, args: string[] = [], env: Record<string, string> = {}) {
  const result = await doctorCli(['--host-root', root, '--output', 'json', ...args], env);
  const report = JSON.parse(result.out) as {
    ok: boolean;
    checks: Array<{ id: string; status: string; finding: string; fix?: string }>;
  };
  const byId = (id: string) => report.checks.find((c) => c.id === id);
  return { ...result, report, byId };
}

describe('cc-manager doctor', () => {
  it('a CC host with its GPUs on VFIO: no failure, exit 0, a readable table', async () => {
    const { root, sysfs } = simNode('hgx-h100-8', { tee: 'sev-snp' });
    await bindAll(sysfs);
    const { code, out } = await doctorCli(['--host-root', root]);
    expect(code).toBe(0);
    expect(out).toMatch(
      /^host: AMD EPYC 9654 96-Core Processor \(AuthenticAMD, flags sev_snp\); kernel 6\.17\.0-1007-gpucc-sim; Ubuntu 25\.10; lockdown none\n\nSTATUS\s+CHECK\s+FINDING\s+FIX\n/,
    );
    expect(out).toMatch(/PASS\s+host-tee\s+AMD SEV-SNP \(kvm_amd sev_snp=Y\) is enabled/);
    expect(out).toMatch(/PASS\s+cpu-tee\s+AMD EPYC 9654 96-Core Processor: sev_snp flag and kvm_amd sev_snp=Y agree/);
    expect(out).toMatch(/PASS\s+kernel-version\s+kernel 6\.17\.0-1007-gpucc-sim \(6\.17 or later/);
    expect(out).toMatch(/PASS\s+lockdown\s+kernel lockdown none: gpu-admin-tools can map GPU BARs/);
    expect(out).toMatch(/PASS\s+iommu\s+IOMMU on: \d+ groups, unit ivhd0/);
    expect(out).toMatch(/PASS\s+kernel-cmdline\s+has amd_iommu=on iommu=pt/);
    expect(out).toMatch(/PASS\s+vfio\s+vfio_pci loaded, driver vfio-pci; device nodes: legacy group nodes/);
    expect(out).toMatch(/PASS\s+gpus\s+8 NVIDIA GPUs \(H100\), 4 NVSwitches/);
    expect(out).toMatch(/PASS\s+cc-capability\s+all 8 GPUs have CC mode on/);
    expect(out).toMatch(
      /PASS\s+cc-firmware\s+the firmware of all 8 GPUs supports CC: each answers its mode \(CC off\)/,
    );
    expect(out).toMatch(/PASS\s+cdi-dir\s+\/var\/run\/cdi exists/);
    expect(out).not.toMatch(/^(WARN|FAIL)/m);
    expect(out).toMatch(/\nnode can run CC workloads in mode on \(\d+ passed, 0 warnings\)\n$/);
  });

  it('no host TEE: the TEE check fails with the BIOS and kernel fix, exit 1', async () => {
    const { root, sysfs } = simNode('hgx-h100-8', { tee: 'none' });
    await bindAll(sysfs);
    const { code, byId, report } = await doctorJson(root);
    expect(code).toBe(1);
    expect(report.ok).toBe(false);
    expect(byId('host-tee')).toEqual({
      id: 'host-tee',
      status: 'fail',
      finding: expect.stringMatching(/no host TEE.*no confidential VM can start/),
      fix: 'enable SEV-SNP in the BIOS and boot with kvm_amd.sev_snp=1 (and mem_encrypt=on)',
    });
    // Mode off runs no confidential VM: the same host only warns.
    const off = await doctorJson(root, ['--mode', 'off']);
    expect(off.code).toBe(0);
    expect(off.byId('host-tee')?.status).toBe('warn');
  });

  it('IOMMU off: the IOMMU and group checks fail with the command-line fix', async () => {
    const { root } = simNode('no-iommu', { tee: 'tdx' });
    const { code, byId } = await doctorJson(root);
    expect(code).toBe(1);
    expect(byId('iommu')).toMatchObject({
      status: 'fail',
      finding: expect.stringMatching(/IOMMU is off: no IOMMU unit/),
      fix: 'enable VT-d / AMD-Vi in the BIOS and boot with intel_iommu=on iommu=pt',
    });
    expect(byId('gpu-iommu-group')).toMatchObject({ status: 'fail', finding: expect.stringContaining('0000:41:00.0') });
    expect(byId('kernel-cmdline')).toMatchObject({
      status: 'warn',
      fix: expect.stringContaining('intel_iommu=on iommu=pt'),
    });
  });

  it('ppcie on a Blackwell node fails naming the B200 (PPCIe is Hopper only)', async () => {
    const { root, sysfs } = simNode('hgx-b200-8');
    await bindAll(sysfs);
    expect((await doctorJson(root)).code).toBe(0);
    const { code, byId } = await doctorJson(root, ['--mode', 'ppcie']);
    expect(code).toBe(1);
    expect(byId('cc-capability')).toMatchObject({
      status: 'fail',
      finding: expect.stringMatching(
        /^no PPCIe on 0000:13:00\.0 B200 \(0x2901\), .* and 4 more; ppcie needs every GPU/,
      ),
      fix: expect.stringContaining('use mode on for Blackwell'),
    });
  });

  it('a GPU without CC (Turing 0x1eb1) fails the capability check by its device ID', async () => {
    const { root } = simNode('workstation-mixed', { tee: 'sev-snp' });
    const { code, byId } = await doctorJson(root);
    expect(code).toBe(1);
    expect(byId('cc-capability')).toMatchObject({ status: 'fail', finding: 'no CC mode on 0000:01:00.0 0x1eb1' });
  });

  it('GPUs still on the nvidia host driver: a warning to bind them to VFIO, still exit 0', async () => {
    const { root } = simNode('hgx-h100-8');
    const { code, byId } = await doctorJson(root);
    expect(code).toBe(0);
    expect(byId('gpu-driver')).toEqual({
      id: 'gpu-driver',
      status: 'warn',
      finding: '8 devices on the nvidia host driver: 0000:13:00.0, 0000:23:00.0, 0000:33:00.0, 0000:43:00.0 and 4 more',
      fix: 'bind them to VFIO first (vfio-manager bind): the mode cannot be switched under the host driver',
    });
    // The firmware check cannot be made: the tool is never run on a device the host driver holds.
    expect(byId('cc-firmware')).toEqual({
      id: 'cc-firmware',
      status: 'warn',
      finding:
        'firmware support for CC not checked: 8 devices on the nvidia host driver (0000:13:00.0, 0000:23:00.0, 0000:33:00.0, 0000:43:00.0 and 4 more)',
      fix: 'bind them to VFIO (vfio-manager bind) and run the doctor again: the tool is never run under a host driver',
    });
  });

  it('missing vfio_pci, Grace variant driver, pci.ids, device-plugin and CDI dirs: warnings with fixes', async () => {
    const { root } = simNode('grace-gh200-1', { tee: 'sev-snp', vfioLoaded: false });
    for (const dir of ['usr/share/misc/pci.ids', 'var/lib/kubelet/device-plugins', 'run/cdi', 'etc/cdi']) {
      rmSync(path.join(root, dir), { recursive: true });
    }
    const { code, byId } = await doctorJson(root);
    expect(code).toBe(0);
    expect(byId('vfio')).toMatchObject({ status: 'warn', fix: expect.stringContaining('--load-modules') });
    expect(byId('vfio-variant')).toMatchObject({
      status: 'warn',
      finding: '0009:01:00.0 needs nvgrace_gpu_vfio_pci (modules.alias), which is not loaded',
    });
    expect(byId('pci-ids')).toMatchObject({
      status: 'warn',
      finding: 'no pci.ids on the host and no --pci-ids fallback: per-model resource names fall back to device IDs',
      fix: expect.stringContaining('--pci-ids FILE (GPUCC_PCI_IDS)'),
    });
    expect(byId('device-plugin-dir')?.status).toBe('warn');
    expect(byId('cdi-dir')).toMatchObject({ status: 'warn', fix: expect.stringContaining('mkdir -p /var/run/cdi') });
  });

  it('JSON: mode, TEE, verdict, counts, every check and the NFD features', async () => {
    const { root, sysfs } = simNode('hgx-h100-8');
    await bindAll(sysfs);
    const { report } = await doctorJson(root);
    expect(report).toEqual({
      mode: 'on',
      tee: 'sev-snp',
      ok: true,
      host: {
        cpu: {
          vendor: 'AuthenticAMD',
          model: 'AMD EPYC 9654 96-Core Processor',
          flags: { sevSnp: true, tdx: false },
        },
        kernel: '6.17.0-1007-gpucc-sim',
        os: 'Ubuntu 25.10',
        lockdown: 'none',
        source: 'host-root',
      },
      summary: { pass: 15, warn: 0, fail: 0 },
      checks: expect.any(Array),
      features: {
        'gpucc.io/doctor.passed': true,
        'nvidia.com/cc.capable': true,
        'nvidia.com/cc.tee': 'sev-snp',
        'nvidia.com/cc.ppcie.capable': true,
        'nvidia.com/cc.iommu': true,
        'gpucc.io/host.cpu.vendor': 'amd',
        'gpucc.io/host.kernel.version': '6.17.0',
        'gpucc.io/host.lockdown': 'none',
        'gpucc.io/host.sev-snp': true,
        'gpucc.io/host.tdx': false,
      },
    });
    expect(report.checks.map((c) => c.id)).toEqual([
      'host-tee',
      'cpu-tee',
      'kernel-version',
      'lockdown',
      'iommu',
      'kernel-cmdline',
      'vfio',
      'gpus',
      'cc-capability',
      'cc-firmware',
      'gpu-driver',
      'gpu-iommu-group',
      'pci-ids',
      'device-plugin-dir',
      'cdi-dir',
    ]);
    for (const c of report.checks) expect(c.fix === undefined).toBe(c.status === 'pass');
  });

  it('--nfd-features-file writes the NFD local feature file under the host root, only when asked', async () => {
    const { root } = simNode('hgx-h100-8');
    const file = path.join(root, NFD_FILE);
    await doctorCli(['--host-root', root]);
    expect(() => readFileSync(file)).toThrow(/ENOENT/);
    const { code, out } = await doctorCli(['--host-root', root, '--nfd-features-file', NFD_FILE]);
    expect(code).toBe(0);
    expect(out).toContain(`NFD features written to ${NFD_FILE}`);
    expect(readFileSync(file, 'utf8')).toBe(
      [
        '# written by cc-manager doctor: CC features of this node',
        'gpucc.io/doctor.passed=true',
        'nvidia.com/cc.capable=true',
        'nvidia.com/cc.tee=sev-snp',
        'nvidia.com/cc.ppcie.capable=true',
        'nvidia.com/cc.iommu=true',
        'gpucc.io/host.cpu.vendor=amd',
        'gpucc.io/host.kernel.version=6.17.0',
        'gpucc.io/host.lockdown=none',
        'gpucc.io/host.sev-snp=true',
        'gpucc.io/host.tdx=false',
        '',
      ].join('\n'),
    );
    const b200 = simNode('hgx-b200-8', { tee: 'none' });
    await doctorCli(['--host-root', b200.root, '--nfd-features-file', NFD_FILE]);
    expect(readFileSync(path.join(b200.root, NFD_FILE), 'utf8')).toContain(
      'gpucc.io/doctor.passed=false\nnvidia.com/cc.capable=false\nnvidia.com/cc.tee=none\nnvidia.com/cc.ppcie.capable=false\nnvidia.com/cc.iommu=true\ngpucc.io/host.cpu.vendor=intel\n',
    );
  });

  it('--nfd-features-file refuses a file it did not write and a path outside features.d/, unless --force', async () => {
    const { root } = simNode('hgx-h100-8');
    const hosts = path.join(root, 'etc/hosts');
    mkdirSync(path.dirname(hosts), { recursive: true });
    writeFileSync(hosts, '127.0.0.1 localhost\n');
    const outside = await doctorCli(['--host-root', root, '--nfd-features-file', '/etc/hosts']);
    expect(outside.code).toBe(2);
    expect(outside.err).toMatch(/ERR_GPUCC_NFD_FILE_OUTSIDE_FEATURES_DIR/);
    expect(readFileSync(hosts, 'utf8')).toBe('127.0.0.1 localhost\n');
    const foreign = path.join(root, NFD_FILE);
    mkdirSync(path.dirname(foreign), { recursive: true });
    writeFileSync(foreign, 'vendor.example/feature=true\n');
    const notOurs = await doctorCli(['--host-root', root, '--nfd-features-file', NFD_FILE]);
    expect(notOurs.code).toBe(2);
    expect(notOurs.err).toMatch(/ERR_GPUCC_NFD_FILE_NOT_OURS/);
    expect(readFileSync(foreign, 'utf8')).toBe('vendor.example/feature=true\n');
    // --force replaces it; then the file is the doctor's own and is rewritten without --force
    expect((await doctorCli(['--host-root', root, '--nfd-features-file', NFD_FILE, '--force'])).code).toBe(0);
    expect(readFileSync(foreign, 'utf8')).toMatch(/^# written by cc-manager doctor/);
    expect((await doctorCli(['--host-root', root, '--nfd-features-file', NFD_FILE])).code).toBe(0);
    expect((await doctorCli(['--host-root', root, '--nfd-features-file', '/etc/hosts', '--force'])).code).toBe(0);
  });

  it('bad usage exits 2 and names the option', async () => {
    const { root } = simNode('hgx-h100-8');
    const mode = await doctorCli(['--host-root', root, '--mode', 'On']);
    expect(mode.code).toBe(2);
    expect(mode.err).toMatch(/--mode.*expected one of on, off, devtools, ppcie/);
    const file = await doctorCli(['--host-root', root, '--nfd-features-file', 'features.d/gpucc']);
    expect(file.code).toBe(2);
    expect(file.err).toMatch(/--nfd-features-file.*absolute host file path/);
    expect((await doctorCli(['--host-root', root, '--output', 'yaml'])).code).toBe(2);
  });
});

describe('cc-manager doctor: kernel lockdown, kernel version, CPU TEE flags', () => {
  it('lockdown integrity fails, names the reason and skips gpu-admin-tools; confidentiality too; exit 1', async () => {
    const { root, sysfs } = simNode('hgx-h100-8', { lockdown: 'integrity' });
    await bindAll(sysfs);
    const { code, byId, report } = await doctorJson(root);
    expect(code).toBe(1);
    expect(byId('lockdown')).toEqual({
      id: 'lockdown',
      status: 'fail',
      finding:
        'kernel lockdown integrity: gpu-admin-tools cannot map GPU BARs or write config space (EPERM), so no CC mode can be read or set',
      fix: expect.stringMatching(
        /^lockdown cannot be lowered while running: boot without lockdown: disable UEFI Secure Boot/,
      ),
    });
    // The tool would only fail with EPERM on each GPU: it is not run.
    expect(byId('cc-firmware')).toMatchObject({
      status: 'warn',
      finding: expect.stringContaining('gpu-admin-tools not run: kernel lockdown integrity denies its BAR mapping'),
    });
    expect(report).toMatchObject({
      host: { lockdown: 'integrity' },
      features: { 'gpucc.io/host.lockdown': 'integrity', 'gpucc.io/doctor.passed': false },
    });
    // Set on the command line: the fix names the argument to drop.
    const cmdline = path.join(root, 'proc/cmdline');
    writeFileSync(cmdline, `${readFileSync(cmdline, 'utf8').trim()} lockdown=integrity\n`);
    expect((await doctorJson(root)).byId('lockdown')).toMatchObject({
      finding: expect.stringContaining('(lockdown=integrity on the command line)'),
      fix: 'lockdown cannot be lowered while running: drop lockdown=integrity from the kernel command line, and reboot',
    });

    const strict = simNode('hgx-b200-8', { lockdown: 'confidentiality' });
    expect((await doctorJson(strict.root)).byId('lockdown')).toMatchObject({
      status: 'fail',
      finding: expect.stringMatching(/^kernel lockdown confidentiality: /),
    });
  });

  it('no lockdown LSM passes with a note; an unmounted securityfs or a malformed file warns with its code', async () => {
    const { root, sysfs } = simNode('hgx-h100-8', { lockdown: 'not-built' });
    await bindAll(sysfs);
    const built = await doctorJson(root);
    expect(built.code).toBe(0);
    expect(built.byId('lockdown')).toMatchObject({
      status: 'pass',
      finding: expect.stringContaining('no lockdown LSM'),
    });
    expect(built.report).toMatchObject({ features: { 'gpucc.io/host.lockdown': 'not-built' } });

    const malformed = simNode('hgx-h100-8');
    writeFileSync(path.join(malformed.root, 'sys/kernel/security/lockdown'), 'locked\n');
    const bad = await doctorJson(malformed.root);
    expect(bad.byId('lockdown')).toMatchObject({
      status: 'warn',
      finding: expect.stringMatching(/^the kernel lockdown cannot be read: ERR_GPUCC_MALFORMED_ATTRIBUTE: .*"locked"/),
    });
    expect(bad.report).toMatchObject({ features: { 'gpucc.io/host.lockdown': 'unknown' } });

    rmSync(path.join(malformed.root, 'sys/kernel/security'), { recursive: true });
    mkdirSync(path.join(malformed.root, 'sys/kernel/security'));
    expect((await doctorJson(malformed.root)).byId('lockdown')).toMatchObject({
      status: 'warn',
      finding: expect.stringContaining('securityfs is not mounted'),
      fix: expect.stringContaining('mount -t securityfs securityfs /sys/kernel/security'),
    });
  });

  it('the kernel against the reference architecture: 6.17+ and its rcs pass, 6.8 and unparsable releases warn', async () => {
    const old = simNode('hgx-h100-8', { kernelRelease: '6.8.0-49-generic' });
    await bindAll(old.sysfs);
    const { code, byId, report } = await doctorJson(old.root);
    expect(code).toBe(0);
    expect(byId('kernel-version')).toEqual({
      id: 'kernel-version',
      status: 'warn',
      finding:
        'kernel 6.8.0-49-generic is older than the 6.17 the NVIDIA reference architecture validates for SEV-SNP and TDX hosts',
      fix: 'install a 6.17 or later kernel (Ubuntu 25.10 ships one) and reboot',
    });
    expect(report).toMatchObject({
      host: { kernel: '6.8.0-49-generic' },
      features: { 'gpucc.io/host.kernel.version': '6.8.0' },
    });
    const rc = simNode('hgx-h100-8', { kernelRelease: '6.17.0-rc3' });
    expect((await doctorJson(rc.root)).byId('kernel-version')).toMatchObject({
      status: 'pass',
      finding: expect.stringContaining('a release candidate'),
    });
    const odd = simNode('hgx-h100-8', { kernelRelease: 'custom-kernel' });
    const oddReport = await doctorJson(odd.root);
    expect(oddReport.byId('kernel-version')).toMatchObject({
      status: 'warn',
      finding: expect.stringContaining('"custom-kernel" does not start with a version'),
    });
    expect(oddReport.report).toMatchObject({ features: { 'gpucc.io/host.kernel.version': 'unknown' } });
  });

  it('a TDX host: Xeon with tdx_host_platform and kvm_intel tdx=Y agree, in the report and the NFD features', async () => {
    const { root, sysfs } = simNode('hgx-b200-8');
    await bindAll(sysfs);
    const { code, out } = await doctorCli(['--host-root', root, '--nfd-features-file', NFD_FILE]);
    expect(code).toBe(0);
    expect(out).toMatch(/^host: INTEL\(R\) XEON\(R\) PLATINUM 8580 \(GenuineIntel, flags tdx_host_platform\); /);
    expect(out).toMatch(
      /PASS\s+cpu-tee\s+INTEL\(R\) XEON\(R\) PLATINUM 8580: tdx_host_platform flag and kvm_intel tdx=Y agree/,
    );
    expect(readFileSync(path.join(root, NFD_FILE), 'utf8')).toContain(
      'gpucc.io/host.cpu.vendor=intel\ngpucc.io/host.kernel.version=6.17.0\ngpucc.io/host.lockdown=none\ngpucc.io/host.sev-snp=false\ngpucc.io/host.tdx=true\n',
    );
  });

  it('a CPU flag without its KVM parameter (or the reverse) warns with the module parameter to set', async () => {
    const amd = simNode('hgx-h100-8', { tee: 'none', cpuTee: 'sev-snp' });
    const snp = await doctorJson(amd.root);
    expect(snp.byId('cpu-tee')).toEqual({
      id: 'cpu-tee',
      status: 'warn',
      finding:
        'AMD EPYC 9654 96-Core Processor has the sev_snp flag (SEV-SNP enabled in the BIOS) but kvm_amd sev_snp is N: KVM starts no SEV-SNP guest',
      fix: 'boot with kvm_amd.sev_snp=1 (and mem_encrypt=on), or with no VM running: modprobe -r kvm_amd && modprobe kvm_amd sev_snp=1',
    });
    expect(snp.report).toMatchObject({ features: { 'gpucc.io/host.sev-snp': false } });

    const intel = simNode('hgx-b200-8', { tee: 'none', cpuTee: 'tdx' });
    expect((await doctorJson(intel.root)).byId('cpu-tee')).toMatchObject({
      status: 'warn',
      finding: expect.stringContaining(
        'has the tdx_host_platform flag (TDX enabled in the BIOS) but kvm_intel tdx is N',
      ),
      fix: expect.stringMatching(/^boot with kvm_intel\.tdx=1, /),
    });

    const reverse = simNode('hgx-b200-8', { tee: 'tdx', cpuTee: 'none' });
    expect((await doctorJson(reverse.root)).byId('cpu-tee')).toMatchObject({
      status: 'warn',
      finding:
        'kvm_intel tdx is Y but the CPU flags (/proc/cpuinfo) lack tdx_host_platform: the two reads disagree about TDX',
    });

    // No flag and no parameter agree (host-tee judges the missing TEE); no cpuinfo cannot be checked.
    const none = simNode('workstation-mixed');
    expect((await doctorJson(none.root)).byId('cpu-tee')).toMatchObject({
      status: 'pass',
      finding: 'AMD EPYC 9654 96-Core Processor: no SEV-SNP or TDX flag (not enabled in the BIOS), as KVM says',
    });
    rmSync(path.join(none.root, 'proc/cpuinfo'));
    const blind = await doctorJson(none.root);
    expect(blind.byId('cpu-tee')).toMatchObject({
      status: 'warn',
      finding: expect.stringContaining('proc/cpuinfo cannot be read'),
    });
    expect(blind.report).toMatchObject({ features: { 'gpucc.io/host.cpu.vendor': 'unknown' } });
    expect(blind.report).not.toHaveProperty('host.cpu');
  });
});

describe('doctor checks (pure)', () => {
  const observation = (change: (o: DoctorObservation) => void = () => {}): DoctorObservation => {
    const { sysfs } = simNode('iommufd-h200-2');
    const o = observeDoctor(sysfs, DEFAULT_CAPABILITY);
    change(o);
    return o;
  };
  const check = (o: DoctorObservation, id: string, mode: 'on' | 'ppcie' = 'on') =>
    runChecks(o, mode).find((c) => c.id === id);

  it('VFIO no-IOMMU mode fails for CC; the unsafe parameter beside a real IOMMU only warns', () => {
    expect(
      check(
        observation((o) => Object.assign(o.iommu, { model: 'noiommu', units: [] })),
        'iommu',
      ),
    ).toMatchObject({
      status: 'fail',
      finding: expect.stringContaining('no-IOMMU mode'),
      fix: expect.stringContaining('drop vfio.enable_unsafe_noiommu_mode'),
    });
    expect(
      check(
        observation((o) => Object.assign(o.iommu, { noiommuParameter: true })),
        'iommu',
      )?.status,
    ).toBe('warn');
  });

  it('kernel command line: iommu=pt missing warns, iommu switched off fails', () => {
    expect(check(observation(), 'kernel-cmdline')).toMatchObject({
      status: 'pass',
      finding: 'has intel_iommu=on iommu=pt',
    });
    expect(
      check(
        observation((o) => (o.cmdline = ['ro', 'intel_iommu=on'])),
        'kernel-cmdline',
      ),
    ).toMatchObject({
      status: 'warn',
      finding: 'the kernel command line lacks iommu=pt',
    });
    expect(
      check(
        observation((o) => (o.cmdline = ['intel_iommu=off'])),
        'kernel-cmdline',
      )?.status,
    ).toBe('fail');
  });

  it('iommufd hosts report their device-node model; no GPU at all fails and skips the per-GPU checks', () => {
    expect(check(observation(), 'vfio')?.finding).toContain('iommufd cdevs /dev/vfio/devices/vfioN');
    const none = runChecks(
      observation((o) => (o.devices = [])),
      'on',
    );
    expect(none.find((c) => c.id === 'gpus')).toMatchObject({
      status: 'fail',
      finding: 'no NVIDIA GPU on the PCI bus',
    });
    expect(none.map((c) => c.id)).not.toContain('cc-capability');
  });
});

const GPU_43 = '0000:43:00.0';
const TOOL = 'opt/gpu-admin-tools/nvidia_gpu_tools.py';

/** The node's fake gpu-admin-tools through the real backend, recording every argument list it is given. */
function recordedTools(root: string, deadlineMs = 15_000) {
  const calls: string[][] = [];
  const script = path.join(root, TOOL);
  const backend = gpuAdminToolsBackend({
    script,
    timeoutMs: deadlineMs,
    maxParallel: 16,
    logger: silentLogger(),
    run: (options: RunToolOptions) => {
      calls.push([...options.args]);
      return runTool(options);
    },
  });
  const tools: DoctorTools = { backend, tool: script, found: true, deadlineMs };
  return { tools, calls };
}

/** The simulator's CC state of every device (one file per CC-capable device). */
function ccStates(root: string): Record<string, string> {
  const dir = path.join(root, '.gpucc-sim/cc');
  return Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(path.join(dir, f), 'utf8')]));
}

describe('cc-manager doctor: firmware support (cc-firmware)', () => {
  it('a GPU whose firmware has no CC fails the check by name, with the fix; exit 1', async () => {
    const { root, sysfs } = simNode('hgx-h100-8');
    await bindAll(sysfs);
    await injectFault(root, { kind: 'fw-no-cc', device: GPU_43 });
    const { code, byId } = await doctorJson(root);
    expect(code).toBe(1);
    expect(byId('cc-capability')?.status).toBe('pass'); // by its device ID it has CC
    expect(byId('cc-firmware')).toEqual({
      id: 'cc-firmware',
      status: 'fail',
      finding: 'firmware without CC: 0000:43:00.0 H100 (0x2330) (gpu-admin-tools: "Querying CC mode is not supported")',
      fix: 'update the firmware (VBIOS) of these devices to a release with CC support (see NVIDIA’s Confidential Computing deployment guide), or move them off this node',
    });
    const table = await doctorCli(['--host-root', root]);
    expect(table.code).toBe(1);
    expect(table.out).toMatch(
      /^FAIL {4}cc-firmware {8}firmware without CC: 0000:43:00\.0 H100 \(0x2330\) \(gpu-admin-tools: "Querying CC mode is not supported"\) +update the firmware \(VBIOS\)/m,
    );
    expect(table.out).toMatch(/\nnode cannot run CC workloads in mode on: 1 failed, 0 warnings, 14 passed\n$/);
    // Mode off needs no CC firmware: nothing is asked.
    const off = await doctorJson(root, ['--mode', 'off']);
    expect(off.code).toBe(0);
    expect(off.byId('cc-firmware')).toEqual({
      id: 'cc-firmware',
      status: 'pass',
      finding: 'mode off needs no CC firmware',
    });
  });

  it('the modes every device answered are in the passing finding', async () => {
    const { root, sysfs } = simNode('hgx-h100-8');
    await bindAll(sysfs);
    expect((await doctorCli(['--host-root', root, '--mode', 'devtools'])).code).toBe(0);
    const { writeCcState } = await import('@gpucc/sim');
    writeCcState(root, H100_GPUS[0]!, { cc: 'on', ccPending: 'on', ppcie: 'off', ppciePending: 'off' });
    const { byId } = await doctorJson(root, ['--mode', 'devtools']);
    expect(byId('cc-firmware')?.finding).toBe(
      'the firmware of all 8 GPUs supports CC: each answers its mode (CC on ×1, off ×7)',
    );
  });

  it('ppcie asks every GPU and NVSwitch: an NVSwitch on old firmware fails it; mode on does not ask PPCIe', async () => {
    const { root, sysfs } = simNode('hgx-h100-8');
    await bindAll(sysfs, { nvswitches: true });
    const ok = await doctorJson(root, ['--mode', 'ppcie']);
    expect(ok.code).toBe(0);
    expect(ok.byId('cc-firmware')).toEqual({
      id: 'cc-firmware',
      status: 'pass',
      finding:
        'the firmware of all 8 GPUs and 4 NVSwitches supports CC and PPCIe: each answers its mode (CC off; PPCIe off)',
    });
    await injectFault(root, { kind: 'fw-no-ppcie', device: NVSWITCHES[1]! });
    const bad = await doctorJson(root, ['--mode', 'ppcie']);
    expect(bad.code).toBe(1);
    expect(bad.byId('cc-firmware')).toEqual({
      id: 'cc-firmware',
      status: 'fail',
      finding:
        'firmware without PPCIe: 0000:08:00.0 NVSwitch_gen3 (0x22a3) (gpu-admin-tools: "does not support PPCIe on current FW")',
      fix: 'update the firmware (VBIOS) of these devices to a release with PPCIe support (see NVIDIA’s Confidential Computing deployment guide), or move them off this node',
    });
    const on = await doctorJson(root);
    expect(on.code).toBe(0);
    expect(on.byId('cc-firmware')?.status).toBe('pass');
  });

  it('reads only: query arguments alone reach the tool, no sysfs write, no CC state change', async () => {
    const { root, sysfs } = simNode('hgx-h100-8');
    await bindAll(sysfs, { nvswitches: true });
    await injectFault(root, { kind: 'fw-no-cc', device: GPU_43 });
    await injectFault(root, { kind: 'fw-no-ppcie', device: NVSWITCHES[0]! });
    const writesBefore = readWriteLog(root).length;
    const states = ccStates(root);
    const { tools, calls } = recordedTools(root);
    for (const mode of ['on', 'devtools', 'ppcie', 'off'] as const) {
      const report = await doctor(sysfs, { mode, capability: DEFAULT_CAPABILITY, tools });
      expect(report.checks.find((c) => c.id === 'cc-firmware')?.status).toBe(mode === 'off' ? 'pass' : 'fail');
    }
    expect(readWriteLog(root).slice(writesBefore)).toEqual([]); // the doctor's share of the write log stays empty
    expect(ccStates(root)).toEqual(states);
    expect(calls[0]).toEqual(['--devices', H100_GPUS.join(','), '--query-cc-mode']);
    const flags = new Set(calls.flat().flatMap((a) => (a.startsWith('-') ? [a.replace(/=.*$/, '')] : [])));
    expect([...flags].sort()).toEqual([
      '--devices',
      '--gpu-bdf', // the tool stops a batch at the refused device: those after it are asked alone
      '--query-cc-mode',
      '--query-ppcie-mode',
      '--query-ppcie-settings',
    ]);
    expect(calls.flat().some((a) => /^--(set|reset)/.test(a))).toBe(false);
  });

  it('never runs the tool on a device a host driver holds', async () => {
    const { root, sysfs } = simNode('hgx-h100-8');
    const { tools, calls } = recordedTools(root);
    const report = await doctor(sysfs, { mode: 'ppcie', capability: DEFAULT_CAPABILITY, tools });
    expect(calls).toEqual([]);
    expect(report.checks.find((c) => c.id === 'cc-firmware')).toMatchObject({
      status: 'warn',
      finding: expect.stringMatching(
        /^firmware support for CC and PPCIe not checked: 12 devices on the nvidia-nvswitch, nvidia host drivers \(0000:07:00\.0, /,
      ),
    });
  });

  it('when the check cannot be made (no tool, a hung tool, a device it cannot read) it warns, exit 0', async () => {
    const { root, sysfs } = simNode('hgx-h100-8');
    await bindAll(sysfs);
    const missing = await doctorJson(root, ['--gpu-admin-tools', '/nonexistent/nvidia_gpu_tools.py']);
    expect(missing.code).toBe(0);
    expect(missing.byId('cc-firmware')).toEqual({
      id: 'cc-firmware',
      status: 'warn',
      finding:
        'gpu-admin-tools not found at /nonexistent/nvidia_gpu_tools.py: firmware support for CC cannot be checked',
      fix: 'install NVIDIA gpu-admin-tools and pass --gpu-admin-tools PATH (with --python python3 if the script is not executable)',
    });

    await injectFault(root, { kind: 'tool-error', device: H100_GPUS[1]! });
    const unreadable = await doctorJson(root);
    expect(unreadable.code).toBe(0);
    expect(unreadable.byId('cc-firmware')).toMatchObject({
      status: 'warn',
      finding: expect.stringMatching(
        /^7 GPUs answer \(CC off\); firmware support for CC not checked: 1 device unreadable \(0000:23:00\.0: ERR_GPUCC_TOOL_FAILED: gpu\.error\.FspRpcError: .*FSP RPC failed/,
      ),
      fix: expect.stringMatching(/--gpu-bdf=0000:23:00\.0 --query-cc-mode by hand/),
    });

    await injectFault(root, { kind: 'tool-hang', device: H100_GPUS[2]! });
    const started = Date.now();
    const hung = await doctorJson(root, ['--tool-timeout', '1000']);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(hung.code).toBe(0);
    expect(hung.byId('cc-firmware')).toEqual({
      id: 'cc-firmware',
      status: 'warn',
      finding: 'gpu-admin-tools did not answer within 1 s: firmware support for CC is unknown',
      fix: expect.stringContaining('raise --tool-timeout'),
    });
  });

  it('pure: a firmware refusal fails even beside devices that could not be asked, and names both', () => {
    const { sysfs } = simNode('iommufd-h200-2');
    const o = observeDoctor(sysfs, DEFAULT_CAPABILITY);
    const [first, second] = o.devices;
    o.firmware = {
      state: 'asked',
      tool: '/opt/gpu-admin-tools/nvidia_gpu_tools.py',
      answers: [{ device: first!, result: 'lacks', what: 'cc', toolSaid: 'Querying CC mode is not supported on …' }],
      held: [{ ...second!, driver: 'nvidia' }],
    };
    const check = runChecks(o, 'on').find((c) => c.id === 'cc-firmware');
    expect(check).toMatchObject({
      status: 'fail',
      finding: expect.stringMatching(
        new RegExp(
          `^firmware without CC: ${first!.address} .*; not checked: 1 device on the nvidia host driver \\(${second!.address}\\)$`,
        ),
      ),
    });
    // Without the probe (a library caller without tools) the check is left out.
    expect(runChecks({ ...o, firmware: undefined }, 'on').map((c) => c.id)).not.toContain('cc-firmware');
  });
});

describe('cc-manager doctor: pci.ids and the --pci-ids fallback', () => {
  it('passes on the fallback when the host has none (naming the file); warns when it is unreadable or absent', async () => {
    const { root } = simNode('hgx-h100-8');
    const image = path.join(tempDir(), 'pci.ids');
    copyFileSync(path.join(root, 'usr/share/misc/pci.ids'), image);
    // The host's own file wins; the fallback is only checked.
    expect((await doctorJson(root, ['--pci-ids', image])).byId('pci-ids')).toEqual({
      id: 'pci-ids',
      status: 'pass',
      finding: '/usr/share/misc/pci.ids',
    });
    const hostBadFallback = await doctorJson(root, ['--pci-ids', '/nonexistent/pci.ids']);
    expect(hostBadFallback.byId('pci-ids')).toMatchObject({
      status: 'warn',
      finding:
        '/usr/share/misc/pci.ids, but the --pci-ids fallback is unreadable (cannot read the pci.ids file /nonexistent/pci.ids: it does not exist): kata-manager and the device plugin exit 2 with it',
    });

    rmSync(path.join(root, 'usr/share/misc/pci.ids'));
    const fallback = await doctorJson(root, ['--pci-ids', image]);
    expect(fallback.byId('pci-ids')).toEqual({
      id: 'pci-ids',
      status: 'pass',
      finding: expect.stringMatching(
        new RegExp(
          `^no pci\\.ids on the host: names come from the --pci-ids fallback ${image}, \\d+ NVIDIA device names$`,
        ),
      ),
    });
    // GPUCC_PCI_IDS is the same option, as for kata-manager and the device plugin.
    expect((await doctorJson(root, [], { GPUCC_PCI_IDS: image })).byId('pci-ids')?.status).toBe('pass');

    const unreadable = await doctorJson(root, ['--pci-ids', '/nonexistent/pci.ids']);
    expect(unreadable.code).toBe(0);
    expect(unreadable.byId('pci-ids')).toEqual({
      id: 'pci-ids',
      status: 'warn',
      finding:
        'no pci.ids on the host, and the --pci-ids fallback is unreadable (cannot read the pci.ids file /nonexistent/pci.ids: it does not exist): kata-manager and the device plugin exit 2 with it',
      fix: expect.stringContaining('give --pci-ids (GPUCC_PCI_IDS) a readable pci.ids'),
    });
    // "" means no fallback, as for the operands.
    expect((await doctorJson(root, ['--pci-ids', ''])).byId('pci-ids')?.finding).toBe(
      'no pci.ids on the host and no --pci-ids fallback: per-model resource names fall back to device IDs',
    );
  });
});
