import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GpuccError } from '../src/errors/index.js';
import { HostRoot, localFs } from '../src/fs/index.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(path.join(existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'gpucc-sysfs-'));
  mkdirSync(path.join(root, 'sys/bus/pci/devices/0000:01:00.0'), { recursive: true });
  writeFileSync(path.join(root, 'sys/bus/pci/devices/0000:01:00.0/vendor'), '0x10de\n');
  writeFileSync(path.join(root, 'sys/bus/pci/devices/0000:01:00.0/driver_override'), '(null)\n');
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('HostRoot on a plain directory (a captured or real host)', () => {
  it('refuses a missing host root with a hint about --host-root', () => {
    expect(() => new HostRoot(path.join(root, 'nope'))).toThrow(
      expect.objectContaining({ code: 'ERR_GPUCC_HOST_ROOT_INVALID' }),
    );
  });

  it('reads under the root; optional reads of missing files are undefined; required ones name the file', () => {
    const s = new HostRoot(root);
    expect(s.read('sys/bus/pci/devices/0000:01:00.0/vendor')).toBe('0x10de\n');
    expect(s.read('/sys/bus/pci/devices/0000:01:00.0/vendor')).toBe('0x10de\n');
    expect(s.readOptional('sys/bus/pci/devices/0000:01:00.0/subsystem_vendor')).toBeUndefined();
    expect(() => s.read('sys/bus/pci/devices/0000:01:00.0/class')).toThrow(
      /\/sys\/bus\/pci\/devices\/0000:01:00.0\/class/,
    );
    expect(s.readdir('sys/bus/pci/devices')).toEqual(['0000:01:00.0']);
    expect(s.readdir('sys/kernel/iommu_groups')).toEqual([]);
  });

  it('refuses every path that would leave the root, before touching it', async () => {
    const s = new HostRoot(root);
    for (const bad of ['../etc/passwd', 'sys/../../x', 'sys/bus/../../../../etc']) {
      expect(() => s.read(bad)).toThrow(expect.objectContaining({ code: 'ERR_GPUCC_PATH_ESCAPES_ROOT' }));
    }
    await expect(s.write('../x', '1')).rejects.toMatchObject({ code: 'ERR_GPUCC_PATH_ESCAPES_ROOT' });
  });

  it('resolves relative links to root-relative paths and refuses links that escape', () => {
    mkdirSync(path.join(root, 'sys/devices/pci0000:00/0000:01:00.0'), { recursive: true });
    symlinkSync('../../../devices/pci0000:00/0000:01:00.0', path.join(root, 'sys/bus/pci/devices/0000:02:00.0'));
    symlinkSync('../../../../../../../etc', path.join(root, 'sys/bus/pci/devices/0000:01:00.0/evil'));
    const s = new HostRoot(root);
    expect(s.resolveLink('sys/bus/pci/devices/0000:02:00.0')).toBe('sys/devices/pci0000:00/0000:01:00.0');
    expect(s.readlink('sys/bus/pci/devices/0000:01:00.0/vendor')).toBeUndefined(); // not a link
    expect(() => s.resolveLink('sys/bus/pci/devices/0000:01:00.0/evil')).toThrow(
      expect.objectContaining({ code: 'ERR_GPUCC_PATH_ESCAPES_ROOT' }),
    );
  });

  it('follows absolute symlinks inside the host root, as a host sees them (/var/run -> /run)', async () => {
    mkdirSync(path.join(root, 'run/cdi'), { recursive: true });
    mkdirSync(path.join(root, 'var'), { recursive: true });
    symlinkSync('/run', path.join(root, 'var/run'));
    symlinkSync('/../../../etc', path.join(root, 'up'));
    const s = new HostRoot(root);
    await s.writeFileAtomic('var/run/cdi/spec.yaml', 'x');
    expect(readFileSync(path.join(root, 'run/cdi/spec.yaml'), 'utf8')).toBe('x');
    expect(s.read('var/run/cdi/spec.yaml')).toBe('x');
    // an absolute link climbing with .. stays at the root, as chroot would: /../../../etc is <root>/etc
    expect(s.resolve('up/passwd')).toBe(path.join(root, 'etc/passwd'));
  });

  it('writes with O_TRUNC into an existing attribute and never creates a missing one', async () => {
    const s = new HostRoot(root);
    await s.write('sys/bus/pci/devices/0000:01:00.0/driver_override', 'vfio-pci');
    expect(readFileSync(path.join(root, 'sys/bus/pci/devices/0000:01:00.0/driver_override'), 'utf8')).toBe('vfio-pci');
    await expect(s.write('sys/bus/pci/devices/0000:01:00.0/reset', '1')).rejects.toMatchObject({
      code: 'ERR_GPUCC_ATTRIBUTE_MISSING',
    });
    expect(existsSync(path.join(root, 'sys/bus/pci/devices/0000:01:00.0/reset'))).toBe(false);
  });

  it("keeps counters but no write log by default: a daemon's HostRoot does not grow with every write", async () => {
    const s = new HostRoot(root);
    await s.write('sys/bus/pci/devices/0000:01:00.0/driver_override', '\n');
    expect(s.recorder.writes).toBe(1);
    expect(s.recorder.writeLog).toEqual([]);
  });

  it('counts reads and writes per attribute in its recorder, and a fresh recorder starts at zero', async () => {
    const s = new HostRoot(root).withRecorder();
    s.read('sys/bus/pci/devices/0000:01:00.0/vendor');
    await s.write('sys/bus/pci/devices/0000:01:00.0/driver_override', '\n');
    await s.write('sys/bus/pci/devices/0000:01:00.0/nope', '1').catch(() => {});
    expect(s.recorder.reads).toBe(1);
    expect(s.recorder.snapshot()).toMatchObject({ writes: 2, writesByAttribute: { driver_override: 1, nope: 1 } });
    expect(s.recorder.writeLog.map((w) => w.result)).toEqual(['ok', 'ENOENT']);
    expect(s.withRecorder().recorder.writes).toBe(0);
  });

  it('reports permission errors with a privilege hint', async () => {
    if (process.getuid?.() === 0) return; // root bypasses file modes; the simulator covers EACCES
    chmodSync(path.join(root, 'sys/bus/pci/devices/0000:01:00.0/vendor'), 0o200);
    expect(() => new HostRoot(root).read('sys/bus/pci/devices/0000:01:00.0/vendor')).toThrow(GpuccError);
  });
});

describe('atomic file writes', () => {
  it('writes with the fixed mode regardless of umask, leaves no temp file, and skips unchanged content', async () => {
    const s = new HostRoot(root);
    const old = process.umask(0o077);
    try {
      expect(await s.writeFileAtomic('run/cdi/nvidia.com-pgpu.yaml', 'a: 1\n')).toBe('written');
    } finally {
      process.umask(old);
    }
    const file = path.join(root, 'run/cdi/nvidia.com-pgpu.yaml');
    expect(statSync(file).mode & 0o777).toBe(0o644);
    const writes = s.recorder.writes;
    expect(await s.writeFileAtomic('run/cdi/nvidia.com-pgpu.yaml', 'a: 1\n')).toBe('unchanged');
    expect(s.recorder.writes).toBe(writes);
    expect(await s.writeFileAtomic('run/cdi/nvidia.com-pgpu.yaml', 'a: 2\n')).toBe('written');
    expect(readFileSync(file, 'utf8')).toBe('a: 2\n');
    expect(readdirSync(path.dirname(file))).toEqual(['nvidia.com-pgpu.yaml']);
  });

  it('refuses to replace a symlink and keeps the target untouched', async () => {
    mkdirSync(path.join(root, 'etc/cdi'), { recursive: true });
    writeFileSync(path.join(root, 'elsewhere'), 'keep');
    symlinkSync('../../elsewhere', path.join(root, 'etc/cdi/x.yaml'));
    await expect(new HostRoot(root).writeFileAtomic('etc/cdi/x.yaml', 'new')).rejects.toMatchObject({
      code: 'ERR_GPUCC_TARGET_IS_SYMLINK',
    });
    expect(readFileSync(path.join(root, 'elsewhere'), 'utf8')).toBe('keep');
  });

  it('a reader polling during 300 rewrites only ever sees a whole old or whole new file', async () => {
    const s = new HostRoot(root);
    const file = path.join(root, 'run/spec.json');
    const bodies = Array.from({ length: 300 }, (_, i) => JSON.stringify({ i, pad: 'x'.repeat(2000 + i) }));
    await s.writeFileAtomic('run/spec.json', bodies[0]!);
    let partial = 0;
    let reads = 0;
    let done = false;
    const reader = (async () => {
      while (!done) {
        try {
          JSON.parse(readFileSync(file, 'utf8'));
        } catch {
          partial++;
        }
        reads++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    for (const body of bodies) await s.writeFileAtomic('run/spec.json', body);
    done = true;
    await reader;
    expect(reads).toBeGreaterThan(0);
    expect(partial).toBe(0);
  });

  it('removes a file once and reports whether it was there', async () => {
    const s = new HostRoot(root);
    await s.writeFileAtomic('run/x', 'y');
    expect(await s.removeFile('run/x')).toBe(true);
    expect(await s.removeFile('run/x')).toBe(false);
  });
});

describe('localFs.readFrom', () => {
  it('reads only what a followed file gained since an offset', () => {
    const log = path.join(root, 'follow.log');
    writeFileSync(log, 'one\n');
    expect(localFs.readFrom(log, 0).toString()).toBe('one\n');
    expect(localFs.readFrom(log, 4).length).toBe(0);
    writeFileSync(log, 'one\ntwo\n');
    expect(localFs.readFrom(log, 4).toString()).toBe('two\n');
  });
});
