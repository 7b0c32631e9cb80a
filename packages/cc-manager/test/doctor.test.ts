import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { simNode } from '../../sim/test/helpers.js';
import { DEFAULT_CAPABILITY } from '../src/capability.js';
import { main } from '../src/cli.js';
import { type DoctorObservation, observeDoctor, runChecks } from '../src/doctor/index.js';
import { bindToVfio } from './helpers.js';

const NFD_FILE = '/etc/kubernetes/node-feature-discovery/features.d/gpucc';

/** The real CLI in-process: stdout, stderr and the exit code a user would see. */
async function doctorCli(args: string[]) {
  let out = '';
  let err = '';
  const saved = { ...process.env };
  for (const key of Object.keys(process.env)) if (key.startsWith('GPUCC_')) delete process.env[key];
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

async function doctorJson(root: string, args: string[] = []) {
  const result = await doctorCli(['--host-root', root, '--output', 'json', ...args]);
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
    await bindToVfio(sysfs);
    const { code, out } = await doctorCli(['--host-root', root]);
    expect(code).toBe(0);
    expect(out).toMatch(/^STATUS\s+CHECK\s+FINDING\s+FIX\n/);
    expect(out).toMatch(/PASS\s+host-tee\s+AMD SEV-SNP \(kvm_amd sev_snp=Y\) is enabled/);
    expect(out).toMatch(/PASS\s+iommu\s+IOMMU on: \d+ groups, unit ivhd0/);
    expect(out).toMatch(/PASS\s+kernel-cmdline\s+has amd_iommu=on iommu=pt/);
    expect(out).toMatch(/PASS\s+vfio\s+vfio_pci loaded, driver vfio-pci; device nodes: legacy group nodes/);
    expect(out).toMatch(/PASS\s+gpus\s+8 NVIDIA GPUs \(H100\), 4 NVSwitches/);
    expect(out).toMatch(/PASS\s+cc-capability\s+all 8 GPUs have CC mode on/);
    expect(out).toMatch(/PASS\s+cdi-dir\s+\/var\/run\/cdi exists/);
    expect(out).not.toMatch(/^(WARN|FAIL)/m);
    expect(out).toMatch(/\nnode can run CC workloads in mode on \(\d+ passed, 0 warnings\)\n$/);
  });

  it('no host TEE: the TEE check fails with the BIOS and kernel fix, exit 1', async () => {
    const { root, sysfs } = simNode('hgx-h100-8', { tee: 'none' });
    await bindToVfio(sysfs);
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
    await bindToVfio(sysfs);
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
    expect(byId('pci-ids')).toMatchObject({ status: 'warn', finding: expect.stringContaining('fall back') });
    expect(byId('device-plugin-dir')?.status).toBe('warn');
    expect(byId('cdi-dir')).toMatchObject({ status: 'warn', fix: expect.stringContaining('mkdir -p /var/run/cdi') });
  });

  it('JSON: mode, TEE, verdict, counts, every check and the NFD features', async () => {
    const { root, sysfs } = simNode('hgx-h100-8');
    await bindToVfio(sysfs);
    const { report } = await doctorJson(root);
    expect(report).toEqual({
      mode: 'on',
      tee: 'sev-snp',
      ok: true,
      summary: { pass: 11, warn: 0, fail: 0 },
      checks: expect.any(Array),
      features: {
        'nvidia.com/cc.capable': true,
        'nvidia.com/cc.tee': 'sev-snp',
        'nvidia.com/cc.ppcie.capable': true,
        'nvidia.com/cc.iommu': true,
      },
    });
    expect(report.checks.map((c) => c.id)).toEqual([
      'host-tee',
      'iommu',
      'kernel-cmdline',
      'vfio',
      'gpus',
      'cc-capability',
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
        'nvidia.com/cc.capable=true',
        'nvidia.com/cc.tee=sev-snp',
        'nvidia.com/cc.ppcie.capable=true',
        'nvidia.com/cc.iommu=true',
        '',
      ].join('\n'),
    );
    const b200 = simNode('hgx-b200-8', { tee: 'none' });
    await doctorCli(['--host-root', b200.root, '--nfd-features-file', NFD_FILE]);
    expect(readFileSync(path.join(b200.root, NFD_FILE), 'utf8')).toContain(
      'nvidia.com/cc.capable=false\nnvidia.com/cc.tee=none\nnvidia.com/cc.ppcie.capable=false\nnvidia.com/cc.iommu=true\n',
    );
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
