// gpucc as a person sees it: the repository's binary in a real pseudo-terminal (node-pty).
import path from 'node:path';
import { writeCcModes } from '@gpucc/hal';
import { boundNode } from '@gpucc/testbed/vitest';
import * as pty from 'node-pty';
import { describe, expect, it } from 'vitest';

const BIN = path.resolve(import.meta.dirname, '../bin/gpucc.mjs');
const ESC = '\u001b';
const HOME_CLEAR = `${ESC}[H${ESC}[J`;
const visible = (text: string) => text.replaceAll(new RegExp(`${ESC}\\[[0-9;?]*[a-zA-Z]`, 'g'), '');

interface Session {
  output: () => string;
  write: (data: string) => void;
  exited: Promise<number>;
}

/** `gpucc status …` in a pty of `cols` columns; the environment is a terminal's, plus `env`. */
function spawnGpucc(args: string[], cols: number, env: Record<string, string> = {}): Session {
  const base = Object.fromEntries(
    Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined && e[0] !== 'NO_COLOR'),
  );
  const term = pty.spawn(process.execPath, [BIN, 'status', '--log-level', 'error', ...args], {
    name: 'xterm-256color',
    cols,
    rows: 50,
    env: { ...base, TERM: 'xterm-256color', ...env },
  });
  let output = '';
  term.onData((data) => {
    output += data;
  });
  const exited = new Promise<number>((resolve) => term.onExit(({ exitCode }) => resolve(exitCode)));
  return { output: () => output, write: (data) => term.write(data), exited };
}

async function until(test: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('gpucc status in a pseudo-terminal', () => {
  it('draws the table in colour, plain with NO_COLOR', async () => {
    const { root } = await boundNode('hgx-h100-8');
    const coloured = spawnGpucc(['--host-root', root], 200);
    expect(await coloured.exited).toBe(0);
    expect(coloured.output()).toContain(`${ESC}[1mADDRESS`);
    expect(coloured.output()).toContain(`${ESC}[32mno problems`);
    expect(visible(coloured.output())).toMatch(/^0000:13:00\.0 +gpu +GH100 \[H100 SXM5 80GB\] +0 +23 +vfio-pci/m);

    const plain = spawnGpucc(['--host-root', root], 200, { NO_COLOR: '1' });
    expect(await plain.exited).toBe(0);
    expect(plain.output()).not.toContain(`${ESC}[`);
    expect(plain.output()).toBe(visible(coloured.output()));
  });

  it('fits a narrow terminal: no line wider than it, the hidden columns named', async () => {
    const { root } = await boundNode('hgx-h100-8', { nvswitches: true });
    const narrow = spawnGpucc(['--host-root', root], 60);
    expect(await narrow.exited).toBe(0);
    const lines = visible(narrow.output()).split(/\r?\n/);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(60);
    expect(lines.join('\n')).toMatch(/^ADDRESS +DRIVER/m);
    expect(lines.join('\n')).toMatch(/hidden to fit: MODEL/);
  });

  it('--watch redraws in place when a device changes; Ctrl-C ends it with exit 0 and the cursor shown', async () => {
    const { root, sysfs } = await boundNode('hgx-h100-8');
    const watch = spawnGpucc(['--host-root', root, '--watch', '--interval', '60000'], 200);
    await until(() => watch.output().includes('no problems'));
    expect(watch.output()).toContain(`${ESC}[?25l`); // cursor hidden while it draws
    await writeCcModes(sysfs, { '0000:13:00.0': { cc: 'off', ppcie: 'off', desired: 'on' } });
    const changed = /0000:13:00\.0 is in cc off, ppcie off but the node asks for on/;
    await until(() => changed.test(visible(watch.output())));
    // Drawn again from the top of the screen, not appended below the first table.
    const frames = watch.output().split(HOME_CLEAR);
    expect(frames.length).toBeGreaterThanOrEqual(3);
    expect(visible(frames.at(-1)!)).toMatch(changed);
    expect(visible(frames[1]!)).not.toMatch(changed);
    watch.write('\u0003'); // Ctrl-C: the terminal sends SIGINT to the foreground process
    expect(await watch.exited).toBe(0);
    expect(watch.output().trimEnd().endsWith(`${ESC}[?25h`)).toBe(true);
  });
});
