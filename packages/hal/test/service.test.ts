import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as localFs from '../src/fs/local-fs.js';
import { startService } from '../src/index.js';

let dir: string;

beforeEach(() => {
  dir = path.join(tmpdir(), `gpucc-service-${randomUUID()}`);
  localFs.makeDir(dir);
});
afterEach(() => localFs.removeSync(dir));

/** A line-protocol process: answers each stdin line in upper case on stdout, logs it on stderr. */
const ECHO = `
const rl = require('node:readline').createInterface({ input: process.stdin });
rl.on('line', (l) => { console.error('got ' + l); console.log(l.toUpperCase()); if (l === 'bye') process.exit(0); });
`;

describe('startService with a line protocol (onStdoutLine)', () => {
  it('feeds stdin with write, hands each stdout line over, keeps stderr in the log; write is refused once it exited', async () => {
    const lines: string[] = [];
    const logFile = path.join(dir, 'echo.log');
    const service = startService({
      command: process.execPath,
      args: ['-e', ECHO],
      logFile,
      onStdoutLine: (line) => lines.push(line),
    });
    expect(service.write('one\ntwo\n')).toBe(true);
    expect(service.write('bye\n')).toBe(true);
    expect(await service.exited).toEqual({ code: 0, signal: null });
    // The last lines may still be in the pipe when the exit is reported.
    for (let i = 0; i < 100 && lines.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
    expect(lines).toEqual(['ONE', 'TWO', 'BYE']);
    expect(localFs.readText(logFile)).toBe('got one\ngot two\ngot bye\n');
    expect(service.write('late\n')).toBe(false);
  });

  it('without it, stdin is closed and there is nothing to write to', async () => {
    const service = startService({ command: process.execPath, args: ['-e', ECHO], logFile: path.join(dir, 'x.log') });
    expect(service.write('one\n')).toBe(false);
    expect(await service.exited).toEqual({ code: 0, signal: null });
  });
});
