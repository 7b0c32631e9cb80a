import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const UNITS = path.resolve(import.meta.dirname, '../deploy/systemd');
const OPERANDS = ['cc-manager', 'vfio-manager', 'kata-manager', 'sandbox-device-plugin'];
const work = mkdtempSync(path.join(os.tmpdir(), 'gpucc-units-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The units as shipped, with ExecStart pointed at an executable that exists here (verify checks it). */
function stage(): string[] {
  const names = readdirSync(UNITS).filter((n) => n.endsWith('.service') || n.endsWith('.target'));
  for (const name of names) {
    const text = readFileSync(path.join(UNITS, name), 'utf8').replace(
      /^ExecStart=\/usr\/local\/bin\/\S+/m,
      'ExecStart=/bin/true',
    );
    writeFileSync(path.join(work, name), text);
  }
  copyFileSync(path.join(UNITS, 'gpucc.target'), path.join(work, 'gpucc.target'));
  return names.map((n) => path.join(work, n));
}

function directive(unit: string, key: string): string[] {
  const text = readFileSync(path.join(UNITS, `gpucc-${unit}.service`), 'utf8');
  return [...text.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!.trim());
}

describe('systemd units', () => {
  it('pass systemd-analyze verify', () => {
    const result = spawnSync('systemd-analyze', ['verify', ...stage()], { encoding: 'utf8' });
    expect(result.error, 'systemd-analyze must be installed (Debian: systemd)').toBeUndefined();
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('start in order cc-manager → vfio-manager → kata-manager → sandbox-device-plugin, all part of gpucc.target', () => {
    for (let i = 1; i < OPERANDS.length; i++) {
      expect(directive(OPERANDS[i]!, 'After').join(' ')).toContain(`gpucc-${OPERANDS[i - 1]}.service`);
    }
    const target = readFileSync(path.join(UNITS, 'gpucc.target'), 'utf8');
    for (const operand of OPERANDS) {
      expect(target).toContain(`gpucc-${operand}.service`);
      expect(directive(operand, 'WantedBy')).toEqual(['gpucc.target']);
      expect(directive(operand, 'ExecStart')).toEqual([`/usr/local/bin/${operand} run`]);
    }
  });

  it('give capabilities only to the two operands that write sysfs, and harden all four', () => {
    expect(directive('cc-manager', 'CapabilityBoundingSet')).toEqual(['CAP_SYS_ADMIN CAP_SYS_RAWIO']);
    expect(directive('vfio-manager', 'CapabilityBoundingSet')).toEqual(['CAP_SYS_ADMIN']);
    expect(directive('kata-manager', 'CapabilityBoundingSet')).toEqual(['']);
    expect(directive('sandbox-device-plugin', 'CapabilityBoundingSet')).toEqual(['']);
    for (const operand of OPERANDS) {
      expect(directive(operand, 'NoNewPrivileges')).toEqual(['yes']);
      expect(directive(operand, 'ProtectSystem')).toEqual(['strict']);
      expect(directive(operand, 'ProtectKernelTunables')).toEqual([
        operand.endsWith('-manager') && operand !== 'kata-manager' ? 'no' : 'yes',
      ]);
    }
  });

  it('have an exposure level of at most 3.5 each (systemd-analyze security)', () => {
    stage();
    for (const operand of OPERANDS) {
      const out = execFileSync(
        'systemd-analyze',
        ['security', '--offline=yes', path.join(work, `gpucc-${operand}.service`)],
        {
          encoding: 'utf8',
        },
      );
      const level = Number(/Overall exposure level for \S+: ([\d.]+)/.exec(out)?.[1]);
      expect(level, operand).toBeLessThanOrEqual(3.5);
    }
  });
});
