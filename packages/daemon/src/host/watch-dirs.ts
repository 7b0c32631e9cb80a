import type { HostRoot } from '@gpucc/hal';

/** A set of directory watches that follows the directories as they come and go. */
export interface DirWatches {
  /**
   * Watches the directories that exist now, again: new watches open before the old ones close, so
   * a directory removed and made again is watched again and no event falls between the two. Returns
   * the directories watched now that were not at the last arming (the first time, or back after they
   * were gone): what changed in them before their watch existed is unknown to the caller.
   */
  refresh(): string[];
  close(): void;
}

/**
 * Watches each directory `dirs` lists (a host path under the root), calling `onChange` with the
 * directory and the entry that appeared or vanished (null when the watch cannot say which). A
 * directory that does not exist now, or may not be watched, is left out until a `refresh` finds it:
 * the operands' periodic resync covers what no watch sees. Armed at once; `refresh` after `close`
 * does nothing.
 */
export function watchDirs(
  sysfs: HostRoot,
  dirs: () => Iterable<string>,
  onChange: (dir: string, name: string | null) => void,
): DirWatches {
  let closers: Array<() => void> = [];
  let watched = new Set<string>();
  let closed = false;
  const arm = (): string[] => {
    if (closed) return [];
    const next: Array<() => void> = [];
    const now = new Set<string>();
    for (const dir of dirs()) {
      if (now.has(dir) || !sysfs.exists(dir)) continue;
      try {
        next.push(sysfs.watchDir(dir, (name) => onChange(dir, name)));
        now.add(dir);
      } catch {
        // a directory we may not watch: the periodic resync still covers it
      }
    }
    const old = closers;
    closers = next;
    for (const close of old) close();
    const fresh = [...now].filter((dir) => !watched.has(dir));
    watched = now;
    return fresh;
  };
  arm();
  return {
    refresh: arm,
    close() {
      closed = true;
      for (const close of closers) close();
      closers = [];
    },
  };
}
