import path from 'node:path';
import { HostRoot, localFs } from '@gpucc/hal';
import { tempDir } from '@gpucc/testbed/vitest';
import { afterEach, describe, expect, it } from 'vitest';
import { type DirWatches, watchDirs } from '../src/index.js';

/** Resolves once `test` holds, checking every 2 ms. */
async function until(test: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

const open: DirWatches[] = [];
afterEach(() => {
  for (const watches of open.splice(0)) watches.close();
});

/** A host root with `dirs` made; `watch` records each event as `<label><dir>/<name>`. */
function host(...dirs: string[]) {
  const root = tempDir();
  for (const dir of dirs) localFs.makeDir(path.join(root, dir));
  const sysfs = new HostRoot(root);
  const events: string[] = [];
  return {
    events,
    mkdir: (dir: string) => localFs.makeDir(path.join(root, dir)),
    rmdir: (dir: string) => localFs.removeSync(path.join(root, dir)),
    touch: (relPath: string) => localFs.writeFileSync(path.join(root, relPath), ''),
    saw: (entry: string) => until(() => events.includes(entry)),
    watch(watched: string[], label = ''): DirWatches {
      const watches = watchDirs(
        sysfs,
        () => watched,
        (dir, name) => events.push(`${label}${dir}/${name}`),
      );
      open.push(watches);
      return watches;
    },
  };
}

describe('watchDirs', () => {
  it('watches the directories that exist, and reports each entry that appears with its directory', async () => {
    const node = host('dev/vfio');
    const watches = node.watch(['dev/vfio', 'dev/vfio/devices']);
    node.touch('dev/vfio/12');
    await node.saw('dev/vfio/12');
    // dev/vfio/devices appears later: watched from the refresh that finds it, said once.
    node.mkdir('dev/vfio/devices');
    expect(watches.refresh()).toEqual(['dev/vfio/devices']);
    expect(watches.refresh()).toEqual([]);
    node.touch('dev/vfio/devices/vfio3');
    await node.saw('dev/vfio/devices/vfio3');
  });

  it('watches a directory removed and made again anew, and says so when it was gone at a refresh', async () => {
    const node = host('var/run/cdi');
    const watches = node.watch(['var/run/cdi']);
    node.rmdir('var/run/cdi');
    expect(watches.refresh()).toEqual([]);
    node.mkdir('var/run/cdi');
    expect(watches.refresh()).toEqual(['var/run/cdi']);
    node.touch('var/run/cdi/a.yaml');
    await node.saw('var/run/cdi/a.yaml');
    // Removed and made again between two refreshes: watched again, not new to the caller.
    node.rmdir('var/run/cdi');
    node.mkdir('var/run/cdi');
    expect(watches.refresh()).toEqual([]);
    node.touch('var/run/cdi/b.yaml');
    await node.saw('var/run/cdi/b.yaml');
  });

  it('reports nothing after close, and a refresh after close watches nothing', async () => {
    const node = host('dev/vfio', 'dev/other');
    const watches = node.watch(['dev/vfio', 'dev/other']);
    watches.close();
    expect(watches.refresh()).toEqual([]);
    node.touch('dev/vfio/12');
    // A second, open watch shows that the events had time to arrive.
    node.watch(['dev/other'], 'probe ');
    node.touch('dev/other/x');
    await node.saw('probe dev/other/x');
    expect(node.events.filter((e) => !e.startsWith('probe '))).toEqual([]);
  });
});
