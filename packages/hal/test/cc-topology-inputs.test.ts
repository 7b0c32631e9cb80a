import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as localFs from '../src/fs/local-fs.js';
import {
  CC_MODE_RECORD_FILE,
  CC_MODE_RECORD_LOCK,
  CcNodeStateReader,
  gpuChipOf,
  HostRoot,
  readCcModeRecord,
  readCcModes,
  readCcNodeState,
  writeCcModes,
  writeCcNodeState,
} from '../src/index.js';

describe('the chip of a PCI device ID (gpu-admin-tools ranges)', () => {
  it.each([
    [0x2330, 'gh100', 'hopper', 'datacenter'], // H100 SXM5
    [0x2335, 'gh100', 'hopper', 'datacenter'], // H200
    [0x2901, 'gb100', 'blackwell', 'datacenter'], // B200
    [0x2bb5, 'gb202', 'blackwell', 'pcie'], // RTX PRO 6000 Blackwell Server Edition
    [0x20b5, 'unknown', 'pre-hopper', 'pcie'], // A100: no CC
  ])('%s → %s %s %s', (id, chip, arch, kind) => {
    expect(gpuChipOf(id)).toEqual({ chip, arch, class: kind });
  });
});

describe("cc-manager's mode record", () => {
  let root: string;
  beforeEach(() => {
    root = path.join(tmpdir(), `gpucc-ccmode-${randomUUID()}`);
    localFs.makeDir(root);
  });
  afterEach(() => localFs.removeSync(root));

  it('is absent until written, then reads back; an unchanged state is not rewritten', async () => {
    const sysfs = new HostRoot(root);
    expect(readCcNodeState(sysfs)).toBeUndefined();
    await writeCcNodeState(sysfs, { state: 'on', since: '2026-12-07T22:00:00.000Z' });
    await writeCcNodeState(sysfs, { state: 'on', since: '2026-12-07T23:00:00.000Z' });
    expect(readCcNodeState(sysfs)).toEqual({ version: 1, state: 'on', since: '2026-12-07T22:00:00.000Z' });
    const switching = { from: 'on' as const, to: 'ppcie' as const, since: '2026-12-07T23:00:00.000Z' };
    await writeCcNodeState(sysfs, { state: 'on', since: switching.since, switching });
    expect(readCcNodeState(sysfs)?.switching).toEqual(switching);
  });

  it('the frequent reader sees every write at once, many in a row included, and reads only after one', async () => {
    const sysfs = new HostRoot(root);
    const reader = new CcNodeStateReader(sysfs);
    expect(reader.read()).toBeUndefined();
    // Writes closer together than the kernel's timestamp granularity, each a different mode.
    for (const [n, state] of (['on', 'off', 'ppcie', 'on', 'off'] as const).entries()) {
      await writeCcNodeState(sysfs, { state, since: `2026-12-07T22:00:0${n}.000Z` });
      expect(reader.read()?.state).toBe(state);
    }
    const reads = sysfs.recorder.reads;
    const first = reader.read();
    expect(reader.read()).toBe(first); // the same object: nothing was read again
    expect(sysfs.recorder.reads).toBe(reads);
    reader.refresh();
    expect(reader.read()).toEqual(first);
    expect(sysfs.recorder.reads).toBeGreaterThan(reads);
    // An unreadable record is the same coded error each time, until it is replaced.
    localFs.writeFileSync(path.join(root, CC_MODE_RECORD_FILE), '{"version":1,"state":"On","since":"x"}');
    expect(() => reader.read()).toThrow(expect.objectContaining({ code: 'ERR_GPUCC_STATE_FILE_INVALID' }));
    localFs.removeSync(path.join(root, CC_MODE_RECORD_FILE));
    expect(reader.read()).toBeUndefined();
  });

  it('two processes writing their own parts at once (cc-manager set beside the daemon) lose nothing', async () => {
    // Each child adds 15 devices of its own, one update at a time; without the host lock, a write
    // made from a read taken before the other's write drops the other's devices.
    const writer = (tag: string) =>
      new Promise<number>((resolve, reject) => {
        const code = `
          import { HostRoot, updateCcModeRecord } from '@gpucc/hal';
          const sysfs = new HostRoot(${JSON.stringify(root)});
          for (let i = 0; i < 15; i++) {
            await updateCcModeRecord(sysfs, (current) => ({
              version: 1,
              ...current,
              devices: { ...current?.devices, ['${tag}' + String(i).padStart(2, '0')]: { cc: 'on', ppcie: 'off', desired: 'on' } },
            }));
          }`;
        const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
          cwd: path.resolve(import.meta.dirname, '..'),
          stdio: ['ignore', 'ignore', 'inherit'],
        });
        child.once('error', reject);
        child.once('exit', (exitCode) => resolve(exitCode ?? -1));
      });
    expect(await Promise.all([writer('0000:0a:00.'), writer('0000:0b:00.')])).toEqual([0, 0]);
    const devices = Object.keys(readCcModes(new HostRoot(root)));
    expect(devices).toHaveLength(30);
    expect(localFs.exists(path.join(root, CC_MODE_RECORD_LOCK))).toBe(false); // released, not left behind
  });

  it('a record that is not one is refused with a coded error, not guessed at', () => {
    localFs.makeDir(path.join(root, 'var/lib/gpucc'));
    localFs.writeFileSync(path.join(root, CC_MODE_RECORD_FILE), '{"version":1,"state":"On","since":"x"}');
    expect(() => readCcNodeState(new HostRoot(root))).toThrow(
      expect.objectContaining({ code: 'ERR_GPUCC_STATE_FILE_INVALID' }),
    );
  });

  it('holds the node state and the device modes in one file; neither write loses the other, even concurrent', async () => {
    const sysfs = new HostRoot(root);
    const gpu = { cc: 'on', ppcie: 'off', desired: 'on' as const };
    // Started together: each write must start from the other's result.
    await Promise.all([
      writeCcNodeState(sysfs, { state: 'on', since: '2026-12-07T22:00:00.000Z' }),
      writeCcModes(sysfs, { '0000:43:00.0': gpu }),
      writeCcModes(sysfs, (devices) => ({ ...devices, '0000:13:00.0': gpu })),
    ]);
    expect(readCcModeRecord(sysfs)).toEqual({
      version: 1,
      state: 'on',
      since: '2026-12-07T22:00:00.000Z',
      devices: { '0000:13:00.0': gpu, '0000:43:00.0': gpu },
    });
    expect(readCcNodeState(sysfs)).toEqual({ version: 1, state: 'on', since: '2026-12-07T22:00:00.000Z' });
    expect(Object.keys(readCcModes(sysfs))).toEqual(['0000:13:00.0', '0000:43:00.0']);
  });

  it('device modes recorded before any node state leave the node state unknown to the plugin', async () => {
    const sysfs = new HostRoot(root);
    await writeCcModes(sysfs, { '0000:43:00.0': { cc: 'off' } });
    expect(readCcNodeState(sysfs)).toBeUndefined();
    expect(readCcModes(sysfs)).toEqual({ '0000:43:00.0': { cc: 'off' } });
  });
});
