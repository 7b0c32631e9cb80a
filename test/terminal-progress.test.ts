// Progress of a long operation on a terminal: `cc-manager set` shows each device as it goes, in a
// real pseudo-terminal (node-pty); piped, it prints nothing extra.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { boundNode } from '@gpucc/testbed/vitest';
import * as pty from 'node-pty';
import { describe, expect, it } from 'vitest';

const CC_MANAGER = path.resolve(import.meta.dirname, '../packages/cc-manager/bin/cc-manager.mjs');
const run = promisify(execFile);
const visible = (text: string) => text.replaceAll(new RegExp(`${'\u001b'}\\[[0-9;?]*[a-zA-Z]`, 'g'), '');

function inPty(args: string[]): Promise<{ code: number; output: string }> {
  const env = Object.fromEntries(
    Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined && e[0] !== 'NO_COLOR'),
  );
  const term = pty.spawn(process.execPath, [CC_MANAGER, ...args], { name: 'xterm-256color', cols: 120, rows: 40, env });
  let output = '';
  term.onData((data) => {
    output += data;
  });
  return new Promise((resolve) => term.onExit(({ exitCode }) => resolve({ code: exitCode, output })));
}

describe('cc-manager set on a terminal', () => {
  it('shows each GPU as its reset ends and as it is verified, with its time; nothing extra when piped', async () => {
    const { root } = await boundNode('iommufd-h200-2');
    const terminal = await inPty(['set', 'on', '--host-root', root]);
    expect(terminal.code).toBe(0);
    const lines = visible(terminal.output);
    expect(lines).toMatch(/^✓ \[[12]\/4\] 0000:[0-9a-f]{2}:00\.0 {2}cc on set, reset {2}\d+\.\d\d s\r?$/m);
    expect(lines.match(/^✓ \[[34]\/4\] 0000:[0-9a-f]{2}:00\.0 {2}verified: cc on, ppcie off\r?$/gm)).toHaveLength(2);
    expect(lines).not.toMatch(/setting cc on and resetting/); // the progress replaces the info logs
    expect(terminal.output).toContain('\u001b[32m✓');

    const piped = await run(process.execPath, [CC_MANAGER, 'set', 'off', '--host-root', root]);
    expect(`${piped.stdout}${piped.stderr}`).not.toMatch(/\[\d\/4\]/);
  });
});
