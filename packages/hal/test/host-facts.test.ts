import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Systeminformation } from 'systeminformation';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AccessRecorder, HostRoot } from '../src/fs/index.js';
import {
  factsFromSystemInformation,
  kernelAtLeast,
  parseCpuinfo,
  parseKernelVersion,
  parseLockdown,
  parseOsRelease,
  readHostFacts,
  readLockdown,
  rootedHostFacts,
} from '../src/host/index.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(path.join(existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'gpucc-facts-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function put(rel: string, content: string): void {
  mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
  writeFileSync(path.join(root, rel), content);
}

const EPYC = [
  'processor\t: 0',
  'vendor_id\t: AuthenticAMD',
  'cpu family\t: 25',
  'model name\t: AMD EPYC 9654 96-Core Processor',
  'flags\t\t: fpu vme sev sev_es sev_snp debug_swap',
  '',
  'processor\t: 1',
  'vendor_id\t: AuthenticAMD',
  'model name\t: something else',
  'flags\t\t: fpu',
  '',
].join('\n');

describe('kernel lockdown', () => {
  it('reads the bracketed level of each form the kernel prints', () => {
    expect(parseLockdown('[none] integrity confidentiality\n')).toBe('none');
    expect(parseLockdown('none [integrity] confidentiality\n')).toBe('integrity');
    expect(parseLockdown('none integrity [confidentiality]\n')).toBe('confidentiality');
  });

  it('refuses what the kernel never prints with a coded error', () => {
    for (const text of ['', 'none integrity confidentiality', '[none] [integrity]', 'none [paranoid]', 'garbage']) {
      expect(() => parseLockdown(text), text).toThrow(
        expect.objectContaining({ code: 'ERR_GPUCC_MALFORMED_ATTRIBUTE' }),
      );
    }
  });

  it('tells a missing lockdown LSM from an unmounted securityfs, and a malformed file from both', () => {
    put('sys/bus/pci/devices/.keep', '');
    const sysfs = new HostRoot(root);
    expect(readLockdown(sysfs)).toEqual({ state: 'no-securityfs' });
    mkdirSync(path.join(root, 'sys/kernel/security'), { recursive: true });
    expect(readLockdown(sysfs)).toEqual({ state: 'no-securityfs' });
    put('sys/kernel/security/lsm', 'capability,yama');
    expect(readLockdown(sysfs)).toEqual({ state: 'not-built' });
    put('sys/kernel/security/lockdown', 'none [integrity] confidentiality\n');
    expect(readLockdown(sysfs)).toEqual({ state: 'active', mode: 'integrity' });
    put('sys/kernel/security/lockdown', 'locked\n');
    expect(readLockdown(sysfs)).toMatchObject({ state: 'unknown', code: 'ERR_GPUCC_MALFORMED_ATTRIBUTE' });
  });
});

describe('kernel version', () => {
  it('parses the upstream version at the start of distribution and rc releases', () => {
    expect(parseKernelVersion('6.17.0-1007-nvidia')).toEqual({ major: 6, minor: 17, patch: 0 });
    expect(parseKernelVersion('6.8.0-49-generic')).toEqual({ major: 6, minor: 8, patch: 0 });
    expect(parseKernelVersion('6.17.0-rc3')).toEqual({ major: 6, minor: 17, patch: 0, rc: 3 });
    expect(parseKernelVersion('6.18-rc1')).toEqual({ major: 6, minor: 18, patch: 0, rc: 1 });
    expect(parseKernelVersion('6.12.48+deb13-amd64')).toEqual({ major: 6, minor: 12, patch: 48 });
    expect(parseKernelVersion('5.14.0-570.el9_6.x86_64')).toEqual({ major: 5, minor: 14, patch: 0 });
    expect(parseKernelVersion('linux-6.17')).toBeUndefined();
    expect(parseKernelVersion('6')).toBeUndefined();
    expect(parseKernelVersion('6.17abc')).toBeUndefined();
  });

  it('compares major.minor: 6.17 and later pass, 6.8 and 5.x do not', () => {
    const at = (r: string) => kernelAtLeast(parseKernelVersion(r)!, 6, 17);
    expect(at('6.17.0-1007-nvidia')).toBe(true);
    expect(at('6.17.0-rc3')).toBe(true);
    expect(at('7.0.1')).toBe(true);
    expect(at('6.8.0-49-generic')).toBe(false);
    expect(at('5.19.0')).toBe(false);
  });
});

describe('host facts from the host root', () => {
  it('reads CPU vendor, model and TEE flags from the first processor, kernel and os-release', () => {
    put('sys/bus/pci/devices/.keep', '');
    put('proc/cpuinfo', EPYC);
    put('proc/sys/kernel/osrelease', '6.17.0-1007-nvidia\n');
    put('etc/os-release', 'NAME="Ubuntu"\nVERSION_ID="25.10"\nPRETTY_NAME="Ubuntu 25.10"\nID=ubuntu\n');
    expect(rootedHostFacts(new HostRoot(root))).toEqual({
      source: 'host-root',
      cpu: {
        vendor: 'amd',
        vendorName: 'AuthenticAMD',
        model: 'AMD EPYC 9654 96-Core Processor',
        sevSnp: true,
        tdx: false,
      },
      kernel: '6.17.0-1007-nvidia',
      os: 'Ubuntu 25.10',
    });
  });

  it('a TDX host shows tdx_host_platform; an unknown CPU is other; no cpuinfo means no CPU fact', () => {
    expect(
      parseCpuinfo(
        'vendor_id\t: GenuineIntel\nmodel name\t: INTEL(R) XEON(R) PLATINUM 8580\nflags\t: vmx tdx_host_platform\n',
      ),
    ).toMatchObject({ vendor: 'intel', tdx: true, sevSnp: false });
    // A guest's tdx_guest flag is not a TDX host.
    expect(parseCpuinfo('vendor_id\t: GenuineIntel\nflags\t: tdx_guest\n')).toMatchObject({ tdx: false });
    expect(parseCpuinfo('CPU implementer\t: 0x41\nFeatures\t: fp asimd\n')).toMatchObject({ vendor: 'other' });
    expect(parseCpuinfo('')).toBeUndefined();
    put('sys/bus/pci/devices/.keep', '');
    put('usr/lib/os-release', 'NAME=Debian\nVERSION_ID=13\n');
    const facts = rootedHostFacts(new HostRoot(root));
    expect(facts.cpu).toBeUndefined();
    expect(facts.os).toBe('Debian 13');
  });

  it('os-release: PRETTY_NAME first, quotes and escapes undone, NAME VERSION_ID otherwise', () => {
    expect(parseOsRelease("PRETTY_NAME='Fedora Linux 42 (Server Edition)'\n")).toBe('Fedora Linux 42 (Server Edition)');
    expect(parseOsRelease('PRETTY_NAME="A \\"quoted\\" name"\n')).toBe('A "quoted" name');
    expect(parseOsRelease('# comment\nNAME=Ubuntu\n')).toBe('Ubuntu');
    expect(parseOsRelease('junk')).toBeUndefined();
  });
});

describe('host facts through systeminformation', () => {
  // Hand-made objects of the package's documented shapes (index.d.ts CpuData, OsData).
  const cpu = {
    manufacturer: 'AMD',
    brand: 'EPYC 9654 96-Core Processor',
    vendor: 'AuthenticAMD',
    family: '25',
    model: '17',
    flags: 'fpu vme sev sev_es sev_snp',
  } as Systeminformation.CpuData;
  const osData = { distro: 'Ubuntu', release: '25.10', kernel: '6.17.0-1007-nvidia' } as Systeminformation.OsData;

  it('maps manufacturer, brand, flags, distro, release and kernel to our facts', () => {
    expect(factsFromSystemInformation(cpu, osData)).toEqual({
      source: 'systeminformation',
      cpu: { vendor: 'amd', vendorName: 'AMD', model: 'AMD EPYC 9654 96-Core Processor', sevSnp: true, tdx: false },
      kernel: '6.17.0-1007-nvidia',
      os: 'Ubuntu 25.10',
    });
    // It answers empty strings for what it could not read: those facts are left out.
    const empty = { manufacturer: '', brand: '', vendor: '', flags: '' } as Systeminformation.CpuData;
    expect(
      factsFromSystemInformation(empty, { distro: '', release: '', kernel: '' } as Systeminformation.OsData),
    ).toEqual({ source: 'systeminformation' });
  });

  it('a CPU answer without flags is left out, so the TEE flags are never guessed false', () => {
    expect(factsFromSystemInformation({ ...cpu, flags: '' }, osData).cpu).toBeUndefined();
  });

  it('is used on the root /, and then reads no host file itself when it answers everything', async () => {
    const recorder = new AccessRecorder();
    const facts = await readHostFacts(new HostRoot('/', { recorder }), {
      cpu: async () => cpu,
      osInfo: async () => osData,
    });
    expect(facts).toMatchObject({ source: 'systeminformation', kernel: '6.17.0-1007-nvidia', os: 'Ubuntu 25.10' });
    expect(recorder.snapshot().reads).toBe(0);
  });

  it('is never used under another host root: systeminformation only reads this machine', async () => {
    put('sys/bus/pci/devices/.keep', '');
    put('proc/cpuinfo', EPYC);
    put('proc/sys/kernel/osrelease', '6.8.0-49-generic\n');
    const asked: string[] = [];
    const facts = await readHostFacts(new HostRoot(root), {
      cpu: async () => {
        asked.push('cpu');
        return cpu;
      },
      osInfo: async () => {
        asked.push('osInfo');
        return osData;
      },
    });
    expect(asked).toEqual([]);
    expect(facts).toMatchObject({ source: 'host-root', kernel: '6.8.0-49-generic' });
  });
});
