import { GpuccError } from '@gpucc/hal';
import { captureLines } from '@gpucc/testbed/fixtures';
import { describe, expect, it } from 'vitest';
import { createLogger, formatPrettyLine, resolveLogFormat } from '../src/index.js';

const BDF = '0000:13:00.0';

describe('JSON logs', () => {
  it('gives every line an event, the binary name, a string level and child bindings', () => {
    const out = captureLines();
    const logger = createLogger({ name: 'vfio-manager', format: 'json', level: 'info', destination: out.sink });
    logger.info({ event: 'daemon.start', version: '1.0.0' }, 'starting');
    logger.child({ device: BDF }).info({ event: 'device.bound', driver: 'vfio-pci' }, 'bound');
    logger.info('no event given');
    const [start, bound, plain] = out.records;
    expect(start).toMatchObject({ event: 'daemon.start', name: 'vfio-manager', level: 'info', msg: 'starting' });
    expect(bound).toMatchObject({ event: 'device.bound', device: BDF, driver: 'vfio-pci' });
    expect(plain).toMatchObject({ event: 'log', msg: 'no event given' });
    expect(Number.isNaN(Date.parse(String(start!.time)))).toBe(false);
  });

  it('drops lines below the level', () => {
    const out = captureLines();
    const logger = createLogger({ name: 't', format: 'json', level: 'warn', destination: out.sink });
    logger.info({ event: 'quiet' }, 'hidden');
    logger.warn({ event: 'loud' }, 'shown');
    expect(out.events()).toEqual(['loud']);
  });

  it('serializes a GpuccError with its code, hint and details, other errors with a stack', () => {
    const out = captureLines();
    const logger = createLogger({ name: 't', format: 'json', level: 'info', destination: out.sink });
    const error = new GpuccError('ERR_GPUCC_SYSFS_WRITE', 'bind refused', {
      hint: 'free the device',
      details: { errno: 'EBUSY' },
    });
    logger.error({ event: 'apply.failed', err: error }, 'apply failed');
    logger.error({ event: 'bug', err: new TypeError('oops') }, 'bug');
    const [gpucc, plain] = out.records;
    expect(gpucc!.err).toEqual({
      type: 'GpuccError',
      code: 'ERR_GPUCC_SYSFS_WRITE',
      message: 'bind refused',
      hint: 'free the device',
      details: { errno: 'EBUSY' },
    });
    expect(plain!.err).toMatchObject({ type: 'TypeError', message: 'oops' });
    expect(String((plain!.err as { stack: string }).stack)).toContain('TypeError: oops');
  });
});

describe('pretty logs', () => {
  it('prints time, level, event, message and key=value pairs, one line each', () => {
    const out = captureLines();
    const logger = createLogger({ name: 't', format: 'pretty', level: 'info', destination: out.sink });
    logger.child({ device: BDF }).info({ event: 'reconcile.done', actions: 2, note: 'two words' }, 'applied');
    expect(out.raw).toHaveLength(1);
    expect(out.raw[0]).toMatch(
      /^\d\d:\d\d:\d\d\.\d{3} INFO {2}reconcile\.done applied device=0000:13:00\.0 actions=2 note="two words"$/,
    );
    expect(out.raw[0]).not.toContain('\x1b['); // no colour codes into a sink that is not a terminal
  });

  it('shows an error code and its hint on their own lines', () => {
    const out = captureLines();
    const logger = createLogger({ name: 't', format: 'pretty', level: 'info', destination: out.sink });
    const error = new GpuccError('ERR_GPUCC_BIND_FAILED', 'bind of 0000:13:00.0 failed', {
      hint: 'check dmesg',
      details: { errno: 'EBUSY' },
    });
    logger.warn({ event: 'apply.failed', err: error }, 'apply failed');
    expect(out.raw[0]).toMatch(/ WARN {2}apply\.failed apply failed$/);
    expect(out.raw).toContain('  error: ERR_GPUCC_BIND_FAILED: bind of 0000:13:00.0 failed');
    expect(out.raw).toContain('  hint: check dmesg');
    expect(out.raw).toContain('  details: errno=EBUSY');
  });

  it('flattens nested details and passes lines that are not JSON through', () => {
    const line = JSON.stringify({ time: 0, level: 'debug', event: 'plan', msg: '', plan: { bind: 1, unbind: 0 } });
    expect(formatPrettyLine(line)).toMatch(/DEBUG plan plan\.bind=1 plan\.unbind=0\n$/);
    expect(formatPrettyLine('not json')).toBe('not json\n');
  });

  it('chooses pretty for auto on a terminal and JSON elsewhere', () => {
    expect(resolveLogFormat('auto', true)).toBe('pretty');
    expect(resolveLogFormat('auto', false)).toBe('json');
    expect(resolveLogFormat('json', true)).toBe('json');
    const out = captureLines();
    createLogger({ name: 't', format: 'auto', level: 'info', destination: out.sink, isTty: false }).info(
      { event: 'x' },
      'y',
    );
    expect(JSON.parse(out.raw[0]!)).toMatchObject({ event: 'x' });
  });
});
