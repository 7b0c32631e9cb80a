// Every binary opens the host root through @gpucc/daemon's openHost: a root that is no host (a file, an
// empty directory, one without sys/bus/pci/devices, a symlink loop, one it may not read) is refused with
// exit 2 and ERR_GPUCC_HOST_ROOT_INVALID, with no JavaScript stack and before any write.
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';

const exec = promisify(execFile);
const bin = (name: string) => path.resolve(import.meta.dirname, `../packages/${name}/bin/${name}.mjs`);

/** One command of each binary that writes (or, for run, would write its readiness marker). */
const COMMANDS: Array<[string, string[]]> = [
  ['vfio-manager', ['run', '--metrics-address', '127.0.0.1:0']],
  ['vfio-manager', ['bind', '--all']],
  ['cc-manager', ['run', '--node-name', 'n1', '--metrics-address', '127.0.0.1:0']],
  ['cc-manager', ['doctor']],
  ['kata-manager', ['run', '--metrics-address', '127.0.0.1:0']],
  ['sandbox-device-plugin', ['run', '--metrics-address', '127.0.0.1:0']],
];

async function run(name: string, args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    const { stderr } = await exec(process.execPath, [bin(name), ...args], { timeout: 15_000 });
    return { code: 0, stderr };
  } catch (error) {
    const e = error as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
}

function badRoots() {
  const dir = tempDir('bad-roots-');
  const file = path.join(dir, 'file');
  writeFileSync(file, 'not a host\n');
  const empty = path.join(dir, 'empty');
  mkdirSync(empty);
  const noPci = path.join(dir, 'no-pci');
  mkdirSync(path.join(noPci, 'sys/bus'), { recursive: true });
  mkdirSync(path.join(noPci, 'dev'));
  const loop = path.join(dir, 'loop');
  symlinkSync('loop', loop);
  return { file, empty, noPci, loop };
}

describe('a host root that is no host', () => {
  it('is refused by every binary with exit 2 and a coded error, and nothing is written into it', async () => {
    const roots = badRoots();
    for (const [name, args] of COMMANDS) {
      const result = await run(name, [...args, '--host-root', roots.empty]);
      expect(result.code, `${name} ${args[0]}: ${result.stderr}`).toBe(2);
      expect(result.stderr).toContain(
        `${name}: ERR_GPUCC_HOST_ROOT_INVALID: host root ${roots.empty} is not a host: /sys/bus/pci/devices does not exist`,
      );
      expect(result.stderr).not.toMatch(/\n\s+at /); // no stack
    }
    expect(readdirSync(roots.empty)).toEqual([]); // vfio-manager run wrote its readiness marker here
    const noPci = await run('vfio-manager', ['run', '--host-root', roots.noPci, '--metrics-address', '127.0.0.1:0']);
    expect(noPci.code).toBe(2);
    expect(readdirSync(roots.noPci).sort()).toEqual(['dev', 'sys']);
    const file = await run('kata-manager', ['write', '--host-root', roots.file]);
    expect(file.code).toBe(2);
    expect(file.stderr).toContain(`host root ${roots.file} is a file, not a directory`);
  });

  it('reports a symlink loop as a loop, not as missing', async () => {
    const roots = badRoots();
    const result = await run('sandbox-device-plugin', ['list', '--host-root', roots.loop]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`host root ${roots.loop} is a symlink loop (ELOOP)`);
  });

  it.skipIf(process.getuid?.() === 0)(
    'reports a root it may not read as permission denied, without a stack',
    async () => {
      const roots = badRoots();
      const { chmodSync } = await import('node:fs');
      chmodSync(roots.noPci, 0o000);
      try {
        const result = await run('vfio-manager', ['status', '--host-root', roots.noPci]);
        expect(result.code).toBe(2);
        expect(result.stderr).toMatch(/ERR_GPUCC_HOST_ROOT_INVALID: .*permission denied \(EACCES\)/);
        expect(result.stderr).not.toMatch(/\n\s+at /);
      } finally {
        chmodSync(roots.noPci, 0o755);
      }
    },
  );
});
