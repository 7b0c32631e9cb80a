// What a person sees on a terminal, with the terminal injected (isTTY, columns, env): every case of the
// rendering and of --watch, fast and in process. pty.test.ts runs the binary in a real pseudo-terminal.
import { writeCcModes } from '@gpucc/hal';
import { boundNode } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import { appended, main, type Terminal } from '../src/index.js';

const ESC = '\u001b';
const visible = (line: string) => line.replaceAll(new RegExp(`${ESC}\\[[0-9;?]*[a-zA-Z]`, 'g'), '');

async function render(root: string, terminal: Partial<Terminal>, args: string[] = []) {
  let out = '';
  const code = await main(['node', 'gpucc', 'status', '--host-root', root, ...args], {
    write: (t) => {
      out += t;
    },
    env: {},
    ...terminal,
  });
  return { code, out };
}

async function until(test: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `gpucc status --watch` running until `stop` aborts; `out()` is what it wrote so far. */
function watch(root: string, terminal: Partial<Terminal>, args: string[] = []) {
  let out = '';
  const stop = new AbortController();
  const done = main(['node', 'gpucc', 'status', '--host-root', root, '--watch', '--interval', '60000', ...args], {
    write: (t) => {
      out += t;
    },
    env: {},
    signal: stop.signal,
    ...terminal,
  });
  return { out: () => out, stop: () => stop.abort(), done };
}

describe('gpucc status on a terminal', () => {
  it('colours the table on a terminal, and not with NO_COLOR or TERM=dumb', async () => {
    const node = await boundNode('hgx-h100-8');
    const coloured = await render(node.root, { isTTY: true, columns: 300 });
    expect(coloured.out).toContain(`${ESC}[1mADDRESS`);
    expect(coloured.out).toContain(`${ESC}[32mno problems`);
    for (const env of [{ NO_COLOR: '1' }, { NO_COLOR: '' }, { TERM: 'dumb' }]) {
      const plain = await render(node.root, { isTTY: true, columns: 300, env });
      expect(plain.out).not.toContain(ESC);
      expect(plain.out).toBe(visible(coloured.out));
    }
  });

  it('fits a narrow terminal: long cells cut, the least needed columns hidden and named', async () => {
    const node = await boundNode('hgx-h100-8', { nvswitches: true });
    const wide = await render(node.root, { isTTY: true, columns: 300 });
    expect(wide.out).not.toMatch(/hidden to fit/);
    const narrow = await render(node.root, { isTTY: true, columns: 80 });
    for (const line of narrow.out.split('\n')) expect(visible(line).length).toBeLessThanOrEqual(80);
    expect(visible(narrow.out)).toMatch(/^ADDRESS +.*DRIVER +.*HEALTH/m);
    expect(visible(narrow.out)).toMatch(/\(hidden to fit: MODEL.*; widen the terminal or use --output json\)/);
    // Piped, nothing is cut whatever the terminal's width.
    const piped = await render(node.root, { isTTY: false, columns: 80 });
    expect(piped.out).toMatch(/GH100 \[H100 SXM5 80GB\]/);
  });

  it('--watch on a terminal redraws in place when a device changes, and leaves the cursor shown', async () => {
    const node = await boundNode('hgx-h100-8');
    const w = watch(node.root, { isTTY: true, columns: 300 });
    await until(() => w.out().includes('no problems'));
    expect(w.out().startsWith(`${ESC}[?25l${ESC}[H${ESC}[J`)).toBe(true);
    await writeCcModes(node.sysfs, { '0000:13:00.0': { cc: 'off', ppcie: 'off', desired: 'on' } });
    await until(() => w.out().split(`${ESC}[H${ESC}[J`).length === 3);
    const last = w.out().split(`${ESC}[H${ESC}[J`)[2]!;
    expect(visible(last)).toMatch(/0000:13:00\.0: 0000:13:00\.0 is in cc off, ppcie off but the node asks for on/);
    w.stop();
    expect(await w.done).toBe(0);
    expect(w.out().endsWith(`${ESC}[?25h`)).toBe(true);
  });

  it('--watch piped appends only the lines that changed, stamped with the time', async () => {
    const node = await boundNode('hgx-h100-8');
    const w = watch(node.root, { isTTY: false });
    await until(() => w.out().includes('no problems'));
    const first = w.out();
    expect(first).not.toContain(ESC);
    await node.sysfs.write('sys/bus/pci/drivers/vfio-pci/unbind', '0000:23:00.0');
    await until(() => w.out().length > first.length && /vfio-not-bound|no driver/.test(w.out().slice(first.length)));
    w.stop();
    expect(await w.done).toBe(0);
    const added = w.out().slice(first.length).trimEnd().split('\n');
    for (const line of added) expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /);
    expect(added.some((l) => /0000:23:00\.0 +gpu .* - +-/.test(l) || /0000:23:00\.0 .*no driver/.test(l))).toBe(true);
  });

  it('--watch --output json prints one JSON document per line', async () => {
    const node = await boundNode('h100-pcie-1');
    const w = watch(node.root, { isTTY: true }, ['--output', 'json']);
    await until(() => w.out().endsWith('\n'));
    w.stop();
    await w.done;
    const lines = w.out().trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!).devices).toHaveLength(1);
  });

  it('appended(): the first frame whole, then only new lines', () => {
    const at = new Date('2026-01-02T03:04:05.006Z');
    expect(appended(undefined, 'a\nb\n', at)).toBe('a\nb\n');
    expect(appended('a\nb\n', 'a\nc\n', at)).toBe('2026-01-02T03:04:05.006Z c\n');
    expect(appended('a\nb\n', 'a\nb\n', at)).toBe('');
  });
});
