import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The facts the code relies on live in docs/ and the code cites them as `docs/<page>.md#<heading>`.
 * A clone has nothing else: no workspace beside it, no numbered reference documents. This test reads
 * every file git knows (tracked, or new and not ignored) and fails on a citation that leaves the
 * repository, or that names a docs page or heading that does not exist.
 */

const ROOT = path.resolve(import.meta.dirname, '..');
const SELF = path.relative(ROOT, import.meta.filename);

// Built from pieces so that this file's own source does not read as a citation.
const OUTSIDE = [
  { pattern: new RegExp(['\\.\\.', 'shared', ''].join('/')), why: 'cites the workspace beside the repository' },
  { pattern: new RegExp(['shared', 'reference'].join('/')), why: 'cites the workspace reference documents' },
  { pattern: /(?<![\w/.-])reference\/[\w-]+\.md/, why: 'cites a reference document the repository does not have' },
  { pattern: /\u00a7\s?\d/, why: 'cites a numbered section of a document the repository does not have' },
];
const DOCS_CITATION = /(?<![\w-])docs\/([\w./-]+?\.md)(?:#([\w-]+))?/g;
const MARKDOWN_LINK = /\]\(([\w./-]*?\.md)?(?:#([\w-]+))?\)/g;

/** The anchor GitHub gives a heading: lower case, punctuation dropped, each space a hyphen. */
function slugOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** Every anchor a Markdown file has: its headings outside code fences, numbered when repeated. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    const heading = fenced ? null : /^#{1,6}\s+(.+?)\s*#*\s*$/.exec(line);
    if (!heading) continue;
    const slug = slugOf(heading[1]!);
    let anchor = slug;
    for (let n = 1; anchors.has(anchor); n++) anchor = `${slug}-${n}`;
    anchors.add(anchor);
  }
  return anchors;
}

const anchorCache = new Map<string, Set<string> | null>();
function anchorsAt(file: string): Set<string> | null {
  if (!anchorCache.has(file)) {
    anchorCache.set(file, existsSync(file) ? anchorsOf(readFileSync(file, 'utf8')) : null);
  }
  return anchorCache.get(file)!;
}

function checkTarget(target: string, anchor: string | undefined, shown: string): string | null {
  const anchors = anchorsAt(target);
  if (anchors === null) return `${shown}: no such file`;
  if (anchor !== undefined && !anchors.has(anchor)) return `${shown}: no heading with the anchor #${anchor}`;
  return null;
}

/** Whether the text at `index` is inside a URL (the word it is in has a scheme). */
function isUrl(line: string, index: number): boolean {
  const start = Math.max(...[' ', '(', '`', '<', '"', "'"].map((c) => line.lastIndexOf(c, index))) + 1;
  return line.slice(start, index).includes('://');
}

/** What is wrong with the citations in one file's text; `file` is relative to `root`. */
function problemsIn(file: string, text: string, root: string = ROOT): string[] {
  const problems: string[] = [];
  const lines = text.split('\n');
  lines.forEach((line, index) => {
    const where = `${file}:${index + 1}`;
    for (const { pattern, why } of OUTSIDE) {
      if (pattern.test(line)) problems.push(`${where} ${why}: ${line.trim()}`);
    }
    for (const match of line.matchAll(DOCS_CITATION)) {
      if (isUrl(line, match.index)) continue; // another repository's docs/, on the web
      const problem = checkTarget(path.join(root, 'docs', match[1]!), match[2], match[0]);
      if (problem) problems.push(`${where} ${problem}`);
    }
    if (!file.endsWith('.md')) return;
    for (const match of line.matchAll(MARKDOWN_LINK)) {
      if (match[1] === undefined && match[2] === undefined) continue;
      const target = match[1] === undefined ? path.join(root, file) : path.join(root, path.dirname(file), match[1]);
      if (!path.relative(root, target).startsWith('docs')) continue; // links into docs/ only
      const problem = checkTarget(target, match[2], match[0]);
      if (problem) problems.push(`${where} ${problem}`);
    }
  });
  return problems;
}

/** Every text file git would commit: tracked, or new and not ignored. */
function repositoryFiles(): string[] {
  const listing = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  return [...new Set(listing.split('\0'))].filter((file) => file !== '' && existsSync(path.join(ROOT, file)));
}

describe('citations of the facts the code relies on', () => {
  it('flags a citation that leaves the repository or names a page or heading docs/ does not have', () => {
    const at = (text: string) => problemsIn('packages/x/src/y.ts', text);
    expect(at(`// see ${['..', 'shared', 'reference', 'cdi.md'].join('/')}`)).toHaveLength(2);
    expect(at(`// (${['reference', 'cc-mode.md'].join('/')} ${'\u00a7'}4)`)).toHaveLength(2);
    expect(at(`// the naming rules (cdi.md ${'\u00a7'}2)`)).toHaveLength(1);
    expect(at(`// ${'docs'}/facts/no-such-page.md#names`)[0]).toContain('no such file');
    expect(at(`// ${'docs'}/facts/cdi.md#no-such-heading`)[0]).toContain('no heading with the anchor #no-such-heading');
    expect(at(`// ${'docs'}/facts/cdi.md#names and ${'docs'}/facts/cdi.md`)).toEqual([]);
    expect(at(`// see https://github.com/o/r/blob/main/${'docs'}/guide.md#setup`)).toEqual([]);
    expect(problemsIn('docs/facts/x.md', 'see [there](cdi.md#nowhere) and [here](#names)')).toHaveLength(2);
  });

  it('gives a heading the anchor GitHub gives it', () => {
    expect(slugOf('Sample: set CC mode off with reset')).toBe('sample-set-cc-mode-off-with-reset');
    expect(slugOf('`gpu-admin-tools` flags')).toBe('gpu-admin-tools-flags');
    expect(slugOf('An open vfio-pci device has enable 1')).toBe('an-open-vfio-pci-device-has-enable-1');
  });

  it('every file in the repository cites docs/ pages and headings that exist, and nothing outside it', () => {
    const problems: string[] = [];
    for (const file of repositoryFiles()) {
      if (file === SELF) continue; // its examples are wrong on purpose
      const bytes = readFileSync(path.join(ROOT, file));
      if (bytes.includes(0)) continue; // binary
      problems.push(...problemsIn(file, bytes.toString('utf8')));
    }
    expect(problems).toEqual([]);
  });
});
