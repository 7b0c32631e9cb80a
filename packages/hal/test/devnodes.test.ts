import { randomUUID } from 'node:crypto';
import { getEventListeners } from 'node:events';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import * as localFs from '../src/fs/local-fs.js';
import {
  detectVfioModel,
  deviceNodesFor,
  GpuccError,
  HostRoot,
  hostDeviceNodesFor,
  noiommuCdevPath,
  noiommuGroupPath,
  vfioCdevPath,
  vfioGroupPath,
  waitForPath,
} from '../src/index.js';

let root: string;

beforeEach(() => {
  root = path.join(tmpdir(), `gpucc-devnodes-${randomUUID()}`);
  localFs.makeDir(root);
});
afterEach(() => localFs.removeSync(root));

function file(relPath: string, content = ''): void {
  const abs = path.join(root, relPath);
  localFs.makeDir(path.dirname(abs));
  localFs.writeFileSync(abs, content);
}

function dir(relPath: string): void {
  localFs.makeDir(path.join(root, relPath));
}

function later(ms: number, action: () => void): void {
  setTimeout(action, ms);
}

/** Counts the directory watches a HostRoot opens and closes. */
function countingSysfs(): { sysfs: HostRoot; opened: () => number; closed: () => number } {
  const sysfs = new HostRoot(root);
  let opened = 0;
  let closed = 0;
  const original = sysfs.watchDir.bind(sysfs);
  sysfs.watchDir = (relPath, onChange) => {
    const close = original(relPath, onChange);
    opened += 1;
    return () => {
      closed += 1;
      close();
    };
  };
  return { sysfs, opened: () => opened, closed: () => closed };
}

describe('detectVfioModel', () => {
  it('is legacy without /dev/iommu, with the IOMMU on when groups exist', () => {
    dir('sys/kernel/iommu_groups/8/devices');
    expect(detectVfioModel(new HostRoot(root))).toMatchObject({ model: 'legacy', iommuEnabled: true, iommufd: false });
  });

  it('is iommufd when /dev/iommu exists', () => {
    dir('sys/kernel/iommu_groups/3');
    file('dev/iommu');
    expect(detectVfioModel(new HostRoot(root))).toMatchObject({ model: 'iommufd', iommuEnabled: true, iommufd: true });
  });

  it('reports the IOMMU off when the groups directory is empty or missing', () => {
    expect(detectVfioModel(new HostRoot(root))).toMatchObject({ model: 'legacy', iommuEnabled: false });
    dir('sys/kernel/iommu_groups');
    expect(detectVfioModel(new HostRoot(root)).iommuEnabled).toBe(false);
  });

  it('is no-IOMMU when the unsafe parameter is Y and there is no IOMMU, even with /dev/iommu', () => {
    file('sys/module/vfio/parameters/enable_unsafe_noiommu_mode', 'Y\n');
    expect(detectVfioModel(new HostRoot(root))).toMatchObject({ model: 'noiommu', noiommuParameter: true });
    file('dev/iommu');
    expect(detectVfioModel(new HostRoot(root)).model).toBe('noiommu');
  });

  it('ignores the unsafe parameter when the host has an IOMMU unit (vfio then uses real groups)', () => {
    file('sys/module/vfio/parameters/enable_unsafe_noiommu_mode', 'Y\n');
    dir('sys/kernel/iommu_groups/1');
    dir('sys/class/iommu/dmar0');
    expect(detectVfioModel(new HostRoot(root))).toMatchObject({
      model: 'legacy',
      noiommuParameter: true,
      iommuEnabled: true,
    });
  });

  it('stays no-IOMMU once bound devices have their fake no-IOMMU groups (no IOMMU unit)', () => {
    file('sys/module/vfio/parameters/enable_unsafe_noiommu_mode', 'Y\n');
    dir('sys/kernel/iommu_groups/0');
    expect(detectVfioModel(new HostRoot(root))).toMatchObject({ model: 'noiommu', iommuEnabled: false });
  });

  it('is not no-IOMMU when the parameter reads N', () => {
    file('sys/module/vfio/parameters/enable_unsafe_noiommu_mode', 'N\n');
    expect(detectVfioModel(new HostRoot(root))).toMatchObject({ model: 'legacy', noiommuParameter: false });
  });
});

describe('device-node paths', () => {
  it('builds host paths relative to the root', () => {
    expect(vfioGroupPath(8)).toBe('dev/vfio/8');
    expect(vfioCdevPath(12)).toBe('dev/vfio/devices/vfio12');
    expect(noiommuGroupPath(3)).toBe('dev/vfio/noiommu-3');
    expect(noiommuCdevPath(0)).toBe('dev/vfio/devices/noiommu-vfio0');
  });

  it('lists the nodes a container needs in each model', () => {
    expect(deviceNodesFor('legacy', { group: 8 })).toEqual(['/dev/vfio/vfio', '/dev/vfio/8']);
    expect(deviceNodesFor('iommufd', { group: 8, cdevIndex: 12 })).toEqual(['/dev/vfio/devices/vfio12']);
    expect(deviceNodesFor('noiommu', { group: 5 })).toEqual(['/dev/vfio/vfio', '/dev/vfio/noiommu-5']);
    expect(hostDeviceNodesFor('legacy', { group: 8 })).toEqual(['dev/vfio/vfio', 'dev/vfio/8']);
  });

  it('refuses anything but a non-negative integer, so nothing else reaches a path', () => {
    const bad = [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '../1' as unknown as number];
    for (const value of bad) {
      for (const build of [vfioGroupPath, vfioCdevPath, noiommuGroupPath, noiommuCdevPath]) {
        expect(() => build(value)).toThrow(expect.objectContaining({ code: 'ERR_GPUCC_INVALID_DEVICE_NUMBER' }));
      }
    }
    expect(() => deviceNodesFor('legacy', { cdevIndex: 1 })).toThrow(
      expect.objectContaining({ code: 'ERR_GPUCC_INVALID_DEVICE_NUMBER' }),
    );
    expect(() => deviceNodesFor('iommufd', { group: 1 })).toThrow(
      expect.objectContaining({ code: 'ERR_GPUCC_INVALID_DEVICE_NUMBER' }),
    );
  });

  it('property: every path stays inside /dev/vfio and ends with the number', () => {
    fc.assert(
      fc.property(fc.nat(), (n) =>
        [vfioGroupPath(n), vfioCdevPath(n), noiommuGroupPath(n), noiommuCdevPath(n)].every(
          (p) => p.startsWith('dev/vfio/') && !p.includes('..') && p.endsWith(String(n)),
        ),
      ),
    );
  });
});

describe('waitForPath', () => {
  it('resolves at once when the path is already there', async () => {
    file('dev/vfio/8');
    await expect(waitForPath(new HostRoot(root), 'dev/vfio/8', { present: true, timeoutMs: 1_000 })).resolves.toBe(
      undefined,
    );
  });

  it('sees a node created after 50 ms through the directory watch', async () => {
    dir('dev/vfio');
    const { sysfs, opened, closed } = countingSysfs();
    later(50, () => file('dev/vfio/8'));
    // polling far slower than the deadline: only the watch can see the node in time
    await waitForPath(sysfs, 'dev/vfio/8', { present: true, timeoutMs: 5_000, pollMs: 60_000 });
    expect(opened()).toBe(1);
    expect(closed()).toBe(1);
  });

  it('gives up at once with the guard’s error when the node can no longer come', async () => {
    dir('dev/vfio');
    let unbound = false;
    later(50, () => {
      unbound = true; // the device left vfio-pci while we waited
    });
    // A deadline past the test's own timeout: only giving up ends this wait in time.
    const error = await waitForPath(new HostRoot(root), 'dev/vfio/8', {
      present: true,
      timeoutMs: 60_000,
      pollMs: 20,
      giveUpIf: () =>
        unbound ? new GpuccError('ERR_GPUCC_DEVICE_LEFT_VFIO', 'left vfio-pci', { hint: 'bind it again' }) : undefined,
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_GPUCC_DEVICE_LEFT_VFIO' });
  });

  it('sees a node whose parent directory does not exist yet', async () => {
    const { sysfs, opened, closed } = countingSysfs();
    later(50, () => file('dev/vfio/devices/vfio3'));
    await waitForPath(sysfs, 'dev/vfio/devices/vfio3', { present: true, timeoutMs: 5_000, pollMs: 20 });
    expect(localFs.exists(path.join(root, 'dev/vfio/devices/vfio3'))).toBe(true);
    expect(closed()).toBe(opened());
  });

  it('resolves when a node vanishes', async () => {
    file('dev/vfio/8');
    const { sysfs, closed, opened } = countingSysfs();
    later(50, () => localFs.removeSync(path.join(root, 'dev/vfio/8')));
    await waitForPath(sysfs, 'dev/vfio/8', { present: false, timeoutMs: 5_000, pollMs: 60_000 });
    expect(opened()).toBe(1);
    expect(closed()).toBe(1);
  });

  it('rejects with DEVICE_NODE_TIMEOUT when the node never appears, and leaves nothing running', async () => {
    dir('dev/vfio');
    const { sysfs, opened, closed } = countingSysfs();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    try {
      const wait = waitForPath(sysfs, 'dev/vfio/9', { present: true, timeoutMs: 150, pollMs: 20 });
      const outcome = wait.then(
        () => undefined,
        (caught: GpuccError) => caught,
      );
      expect(vi.getTimerCount()).toBe(2); // the poll and the deadline
      await vi.advanceTimersByTimeAsync(150);
      const error = await outcome;
      expect(error?.code).toBe('ERR_GPUCC_DEVICE_NODE_TIMEOUT');
      expect(error?.message).toContain('/dev/vfio/9');
      expect(error?.hint).toMatch(/udev/);
      expect(error?.hint).toMatch(/VFIO driver/);
      expect(vi.getTimerCount()).toBe(0);
      expect(opened()).toBe(1);
      expect(closed()).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it('stops waiting when aborted, rejecting with the reason, and leaves nothing running', async () => {
    dir('dev/vfio');
    const { sysfs, opened, closed } = countingSysfs();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    try {
      const controller = new AbortController();
      const reason = new Error('shutdown');
      const wait = waitForPath(sysfs, 'dev/vfio/9', {
        present: true,
        timeoutMs: 60_000,
        pollMs: 20,
        signal: controller.signal,
      });
      await vi.advanceTimersByTimeAsync(50);
      controller.abort(reason);
      await expect(wait).rejects.toBe(reason);
      expect(vi.getTimerCount()).toBe(0);
      expect(opened()).toBe(1);
      expect(closed()).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it('rejects at once with an already aborted signal, without watching', async () => {
    file('dev/vfio/8');
    const { sysfs, opened } = countingSysfs();
    const signal = AbortSignal.abort(new Error('gone'));
    await expect(waitForPath(sysfs, 'dev/vfio/8', { present: true, timeoutMs: 1_000, signal })).rejects.toThrow('gone');
    expect(opened()).toBe(0);
  });

  it('releases its timers and abort listener after success too', async () => {
    dir('dev/vfio');
    const sysfs = new HostRoot(root);
    const { signal } = new AbortController();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    try {
      const wait = waitForPath(sysfs, 'dev/vfio/8', { present: true, timeoutMs: 60_000, pollMs: 20, signal });
      expect(getEventListeners(signal, 'abort')).toHaveLength(1);
      file('dev/vfio/8');
      await vi.advanceTimersByTimeAsync(20);
      await wait;
      expect(vi.getTimerCount()).toBe(0);
      expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('refuses a path that leaves the host root', async () => {
    await expect(
      waitForPath(new HostRoot(root), '../../etc/passwd', { present: true, timeoutMs: 100 }),
    ).rejects.toThrow(expect.objectContaining({ code: 'ERR_GPUCC_PATH_ESCAPES_ROOT' }));
  });
});
