import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as localFs from '../src/fs/local-fs.js';
import { CC_NODE_STATE_FILE, gpuChipOf, HostRoot, readCcNodeState, writeCcNodeState } from '../src/index.js';

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

  it('a record that is not one is refused with a coded error, not guessed at', () => {
    localFs.makeDir(path.join(root, 'var/lib/gpucc'));
    localFs.writeFileSync(path.join(root, CC_NODE_STATE_FILE), '{"version":1,"state":"On","since":"x"}');
    expect(() => readCcNodeState(new HostRoot(root))).toThrow(
      expect.objectContaining({ code: 'ERR_GPUCC_STATE_FILE_INVALID' }),
    );
  });
});
