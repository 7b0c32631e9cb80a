import path from 'node:path';
import { localFs } from '@gpucc/hal';
import { relativeLink } from './paths.js';

/**
 * Small helpers for laying out and mutating a host tree under a root, as the kernel would.
 * The simulator is the kernel: it writes the tree directly (through hal's localFs), never through HostRoot.
 */
export class Tree {
  /** Directories known to exist, so laying out thousands of attributes does not re-create parents. */
  private readonly madeDirs = new Set<string>();

  /**
   * `replaceFiles`: write each file under a temporary name and rename it into place. The kernel
   * changes an attribute under its readers atomically (a read sees the old or the new text), so a
   * running node (the kernel simulator, the fake tools) must too; laying out a new node need not.
   */
  constructor(
    readonly root: string,
    private readonly options: { replaceFiles?: boolean } = {},
  ) {}

  private ensureParent(abs: string): void {
    const parent = path.dirname(abs);
    // On a running node another process may have removed the directory since (a GPU detached from
    // nvidia in one process, attached in another): only a node being laid out may trust the cache.
    if (this.madeDirs.has(parent) && !this.options.replaceFiles) return;
    localFs.makeDir(parent);
    this.madeDirs.add(parent);
  }

  abs(rel: string): string {
    return path.join(this.root, rel);
  }

  dir(rel: string, mode = 0o755): void {
    localFs.makeDir(this.abs(rel), mode);
  }

  /** A kernel text attribute: content gets its trailing newline here. */
  attr(rel: string, value: string, mode = 0o444): void {
    this.file(rel, `${value}\n`, mode);
  }

  file(rel: string, content: string | Uint8Array, mode = 0o644): void {
    const abs = this.abs(rel);
    this.ensureParent(abs);
    if (!this.options.replaceFiles) {
      localFs.writeFileSync(abs, content, mode);
      return;
    }
    const temp = `${path.dirname(abs)}/.${path.basename(abs)}.${process.pid}.sim-tmp`;
    localFs.writeFileSync(temp, content, mode);
    localFs.renameSync(temp, abs);
  }

  /** A write-only attribute (bind, unbind, reset...): empty, mode 0200. */
  writeOnly(rel: string): void {
    this.file(rel, '', 0o200);
  }

  /** A relative symlink at `rel` pointing at the root-relative `target`, replacing any old one. */
  link(rel: string, target: string): void {
    const abs = this.abs(rel);
    this.ensureParent(abs);
    try {
      localFs.symlinkSync(relativeLink(rel, target), abs);
    } catch (error) {
      if ((error as { code?: string }).code !== 'EEXIST') throw error;
      localFs.removeSync(abs);
      localFs.symlinkSync(relativeLink(rel, target), abs);
    }
  }

  remove(rel: string): void {
    const abs = this.abs(rel);
    localFs.removeSync(abs);
    // forget cached directories at or below the removed path
    for (const dir of this.madeDirs) if (dir === abs || dir.startsWith(`${abs}/`)) this.madeDirs.delete(dir);
  }

  exists(rel: string): boolean {
    return localFs.kindOf(this.abs(rel)) !== undefined;
  }

  read(rel: string): string {
    return localFs.readText(this.abs(rel));
  }

  list(rel: string): string[] {
    try {
      return localFs.listDir(this.abs(rel));
    } catch (error) {
      if (localFs.isMissing(error)) return [];
      throw error;
    }
  }

  readLink(rel: string): string | undefined {
    try {
      return path.normalize(path.join(path.dirname(rel), localFs.readLink(this.abs(rel))));
    } catch (error) {
      if (localFs.isMissing(error) || (error as { code?: string }).code === 'EINVAL') return undefined;
      throw error;
    }
  }
}
