import { GpuccError } from '@gpucc/hal';
import { Command } from 'commander';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import * as z from 'zod/mini';
import {
  addCommonOptions,
  addPciIdsOption,
  DEFAULT_METRICS_ADDRESS,
  envVarFor,
  mirroredFlag,
  mirroredOption,
  parseListenAddress,
  readCommonConfig,
  readOptions,
  readPciIdsSource,
} from '../src/index.js';

const VARS = ['GPUCC_HOST_ROOT', 'GPUCC_LOG_FORMAT', 'GPUCC_LOG_LEVEL', 'GPUCC_METRICS_ADDRESS', 'GPUCC_RESYNC_MS'];

beforeEach(() => {
  for (const name of [...VARS, 'GPUCC_DRY_RUN']) vi.stubEnv(name, undefined);
});
afterEach(() => {
  vi.unstubAllEnvs();
});

function parse(args: string[], env: Record<string, string> = {}, defaults?: { metricsAddress?: string }) {
  for (const [name, value] of Object.entries(env)) vi.stubEnv(name, value);
  const command = addCommonOptions(new Command('gpucc-test').exitOverride(), defaults);
  command.parse(args, { from: 'user' });
  return command;
}

function configError(run: () => unknown): GpuccError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(GpuccError);
    expect((error as GpuccError).code).toBe('ERR_GPUCC_INVALID_CONFIG');
    return error as GpuccError;
  }
  throw new Error('expected ERR_GPUCC_INVALID_CONFIG');
}

describe('common options', () => {
  it('uses the documented defaults when neither flag nor variable is set', () => {
    expect(readCommonConfig(parse([]))).toEqual({
      hostRoot: '/',
      logFormat: 'auto',
      logLevel: 'info',
      metricsAddress: { host: '127.0.0.1', port: 9470 },
    });
    expect(DEFAULT_METRICS_ADDRESS).toBe('127.0.0.1:9470');
  });

  it('takes every value from its GPUCC_ variable when the flag is absent', () => {
    const config = readCommonConfig(
      parse([], {
        GPUCC_HOST_ROOT: '/host',
        GPUCC_LOG_FORMAT: 'pretty',
        GPUCC_LOG_LEVEL: 'debug',
        GPUCC_METRICS_ADDRESS: ':0',
      }),
    );
    expect(config).toEqual({
      hostRoot: '/host',
      logFormat: 'pretty',
      logLevel: 'debug',
      metricsAddress: { host: undefined, port: 0 },
    });
  });

  it('lets a flag win over its variable, and ignores a bad variable that a flag overrides', () => {
    const config = readCommonConfig(
      parse(['--log-format', 'json', '--log-level', 'warn', '--host-root', 'relative/node'], {
        GPUCC_LOG_FORMAT: 'pretty',
        GPUCC_LOG_LEVEL: 'loud',
        GPUCC_HOST_ROOT: '/host',
      }),
    );
    expect(config.logFormat).toBe('json');
    expect(config.logLevel).toBe('warn');
    expect(config.hostRoot).toBe(`${process.cwd()}/relative/node`);
  });

  it('lets a binary pick its own default address', () => {
    const config = readCommonConfig(parse([], {}, { metricsAddress: '127.0.0.1:9472' }));
    expect(config.metricsAddress).toEqual({ host: '127.0.0.1', port: 9472 });
  });

  it('names the flag, the variable, the source and the allowed values of a bad variable', () => {
    const error = configError(() => readCommonConfig(parse([], { GPUCC_LOG_FORMAT: 'xml' })));
    expect(error.message).toContain('--log-format');
    expect(error.message).toContain('GPUCC_LOG_FORMAT');
    expect(error.message).toContain('"xml"');
    expect(error.message).toContain('environment variable');
    expect(error.message).toContain('json, pretty, auto');
    expect(error.hint).toContain('json, pretty, auto');
    expect(error.details).toMatchObject({ option: '--log-format', env: 'GPUCC_LOG_FORMAT', source: 'env' });
  });

  it('names both spellings for a bad flag too, and says it came from the flag', () => {
    const error = configError(() => readCommonConfig(parse(['--metrics-address', 'localhost'])));
    expect(error.message).toContain('--metrics-address (GPUCC_METRICS_ADDRESS)');
    expect(error.message).toContain('set by the flag');
    expect(error.message).toContain('host:port');
    const level = configError(() => readCommonConfig(parse(['--log-level', 'verbose'])));
    expect(level.message).toContain('--log-level (GPUCC_LOG_LEVEL)');
    expect(level.message).toContain('fatal, error, warn, info, debug, trace, silent');
  });

  it('refuses an empty host root set through the environment', () => {
    const error = configError(() => readCommonConfig(parse([], { GPUCC_HOST_ROOT: '' })));
    expect(error.message).toContain('GPUCC_HOST_ROOT');
  });

  it('shows each variable in --help', () => {
    const help = parse([]).helpInformation().replace(/\s+/g, ' ');
    for (const name of VARS.slice(0, 4)) expect(help).toContain(`env: ${name}`);
  });
});

describe('listen addresses', () => {
  it.each([
    ['127.0.0.1:9470', { host: '127.0.0.1', port: 9470 }],
    ['localhost:0', { host: 'localhost', port: 0 }],
    [':8080', { host: undefined, port: 8080 }],
    ['[::1]:9470', { host: '::1', port: 9470 }],
  ])('accepts %s', (text, expected) => {
    expect(parseListenAddress(text)).toEqual(expected);
  });

  it.each(['9470', '127.0.0.1', '127.0.0.1:65536', '::1:9470', 'host:port', 'a b:1', ''])('refuses %j', (text) => {
    expect(parseListenAddress(text)).toBeUndefined();
  });
});

describe('operand-specific mirrored options', () => {
  const schema = z.object({
    resyncMs: z.coerce.number().check(z.int(), z.positive()),
    dryRun: z._default(z.boolean(), false),
  });

  function operand(args: string[], env: Record<string, string> = {}) {
    for (const [name, value] of Object.entries(env)) vi.stubEnv(name, value);
    const command = new Command('op')
      .exitOverride()
      .addOption(mirroredOption('--resync-ms <ms>', 'resync period', { default: '60000' }))
      .addOption(mirroredFlag('--dry-run', 'print the plan, apply nothing'));
    command.parse(args, { from: 'user' });
    return readOptions(command, schema);
  }

  it('derives the variable from the long flag name', () => {
    expect(envVarFor('--resync-ms <ms>')).toBe('GPUCC_RESYNC_MS');
    expect(envVarFor('-n, --dry-run')).toBe('GPUCC_DRY_RUN');
  });

  it('reads flag > env > default and validates with the schema', () => {
    expect(operand([])).toEqual({ resyncMs: 60000, dryRun: false });
    expect(operand([], { GPUCC_RESYNC_MS: '5000' }).resyncMs).toBe(5000);
    expect(operand(['--resync-ms', '7'], { GPUCC_RESYNC_MS: '5000' }).resyncMs).toBe(7);
    const error = configError(() => operand([], { GPUCC_RESYNC_MS: '-3' }));
    expect(error.message).toContain('--resync-ms (GPUCC_RESYNC_MS)');
    expect(error.message).toContain('"-3"');
  });

  it('says in English what is wrong with a value that the schema gives no message of its own (zod/mini has none)', () => {
    expect(configError(() => operand(['--resync-ms', '0'])).message).toMatch(/: Too small: expected number to be >0$/);
    expect(configError(() => operand(['--resync-ms', 'soon'])).message).toMatch(
      /: Invalid input: expected number, received NaN$/,
    );
    expect(configError(() => operand(['--resync-ms', '1.5'])).message).toMatch(
      /: Invalid input: expected int, received number$/,
    );
  });

  it('parses a boolean variable strictly: GPUCC_DRY_RUN=false means false', () => {
    expect(operand([], { GPUCC_DRY_RUN: 'false' }).dryRun).toBe(false);
    expect(operand([], { GPUCC_DRY_RUN: '0' }).dryRun).toBe(false);
    expect(operand([], { GPUCC_DRY_RUN: 'true' }).dryRun).toBe(true);
    expect(operand([], { GPUCC_DRY_RUN: '1' }).dryRun).toBe(true);
    expect(operand(['--dry-run'], { GPUCC_DRY_RUN: 'false' }).dryRun).toBe(true);
    const error = configError(() => operand([], { GPUCC_DRY_RUN: 'maybe' }));
    expect(error.message).toContain('--dry-run (GPUCC_DRY_RUN)');
    expect(error.hint).toContain('true, false');
  });
});

describe('--pci-ids (GPUCC_PCI_IDS): the names fallback outside the host root', () => {
  const pciIds = (args: string[], env: Record<string, string | undefined> = {}) => {
    vi.stubEnv('GPUCC_PCI_IDS', undefined);
    for (const [name, value] of Object.entries(env)) vi.stubEnv(name, value);
    const command = addPciIdsOption(new Command('gpucc-test').exitOverride());
    command.parse(args, { from: 'user' });
    return readPciIdsSource(command);
  };
  const here = new URL(import.meta.url).pathname; // a readable file of this machine

  it('is mirrored by GPUCC_PCI_IDS; unset or "" means no fallback; the flag wins', () => {
    expect(envVarFor('--pci-ids')).toBe('GPUCC_PCI_IDS');
    expect(pciIds([])).toEqual({});
    expect(pciIds([], { GPUCC_PCI_IDS: '' })).toEqual({});
    expect(pciIds([], { GPUCC_PCI_IDS: here })).toEqual({ fallbackFile: here });
    expect(pciIds(['--pci-ids', here], { GPUCC_PCI_IDS: '/nowhere/pci.ids' })).toEqual({ fallbackFile: here });
  });

  it('is checked at once: a missing file is ERR_GPUCC_PCI_IDS_UNREADABLE', () => {
    expect(() => pciIds([], { GPUCC_PCI_IDS: '/nowhere/pci.ids' })).toThrow(
      expect.objectContaining({
        code: 'ERR_GPUCC_PCI_IDS_UNREADABLE',
        details: expect.objectContaining({ path: '/nowhere/pci.ids' }),
      }),
    );
  });
});
