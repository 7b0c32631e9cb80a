import { GpuccError } from '@gpucc/hal';
import { Command } from 'commander';
import { describe, expect, it, vi } from 'vitest';
import { keepExitCodes, runCli, table } from '../src/index.js';

function program(action: () => void, exit: { code: number }) {
  const cli = new Command('tool');
  cli.addCommand(new Command('go').action(action));
  cli.addCommand(
    new Command('ok').action(() => {
      exit.code = 0;
    }),
  );
  cli.addCommand(
    new Command('partial').action(() => {
      exit.code = 1;
    }),
  );
  return keepExitCodes(cli, () => {});
}

async function run(args: string[], action: () => void = () => {}) {
  const exit = { code: 0 };
  const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    const code = await runCli('tool', program(action, exit), ['node', 'tool', ...args], exit, [
      'ERR_GPUCC_INVALID_PCI_ADDRESS',
    ]);
    return { code, printed: stderr.mock.calls.map((c) => String(c[0])).join('') };
  } finally {
    stderr.mockRestore();
  }
}

describe('runCli', () => {
  it('returns the exit code the command set', async () => {
    expect((await run(['ok'])).code).toBe(0);
    expect((await run(['partial'])).code).toBe(1);
  });

  it('exits 2 on bad usage, on an unknown subcommand option, and on the binary’s input errors', async () => {
    expect((await run(['go', '--bogus'])).code).toBe(2);
    const bad = await run(['go'], () => {
      throw new GpuccError('ERR_GPUCC_INVALID_PCI_ADDRESS', 'invalid PCI address "x"', { hint: 'use dddd:bb:dd.f' });
    });
    expect(bad).toEqual({
      code: 2,
      printed: 'tool: ERR_GPUCC_INVALID_PCI_ADDRESS: invalid PCI address "x"\n  hint: use dddd:bb:dd.f\n',
    });
  });

  it('exits 1 on any other failure and says what it was', async () => {
    const failed = await run(['go'], () => {
      throw new GpuccError('ERR_GPUCC_BIND_FAILED', 'bind failed', { hint: 'see dmesg' });
    });
    expect(failed.code).toBe(1);
    const crashed = await run(['go'], () => {
      throw new TypeError('boom');
    });
    expect(crashed.code).toBe(1);
    expect(crashed.printed).toMatch(/unexpected error: TypeError: boom/);
  });
});

describe('table', () => {
  it('aligns columns and does not pad the last one', () => {
    expect(
      table(
        ['A', 'BB'],
        [
          ['long', 'x'],
          ['s', 'yy'],
        ],
      ),
    ).toBe('A     BB\nlong  x\ns     yy\n');
  });
});
