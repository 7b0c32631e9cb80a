import { captureLines, parseExposition } from '@gpucc/testbed/fixtures';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../src/index.js';
import { CONTENT_TYPE, createMetrics, type HealthServer, Registry, startHealthServer } from '../src/runtime.js';

const PROCESS_SERIES = [
  'process_cpu_user_seconds_total',
  'process_cpu_system_seconds_total',
  'process_cpu_seconds_total',
  'process_start_time_seconds',
  'process_resident_memory_bytes',
  'nodejs_heap_size_total_bytes',
  'nodejs_heap_size_used_bytes',
  'nodejs_external_memory_bytes',
  'nodejs_eventloop_lag_seconds',
  'nodejs_version_info',
];

describe('the strict reader the tests check with', () => {
  it.each([
    ['no final line feed', 'a 1'],
    ['a family split in two groups', 'a 1\nb 1\na{x="1"} 1\n'],
    ['TYPE after a sample', 'a 1\n# TYPE a gauge\n'],
    ['an unknown escape in a label value', 'a{x="\\t"} 1\n'],
    ['a raw quote in a label value', 'a{x="say "hi""} 1\n'],
    ['a value that is not a float', 'a 0x1g\n'],
    ['the same series twice', 'a{x="1",y="2"} 1\na{y="2",x="1"} 2\n'],
    [
      'buckets that are not cumulative',
      '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 3\nh_count 1\n',
    ],
    ['a histogram without +Inf', '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 3\nh_count 1\n'],
  ])('refuses %s', (_, text) => {
    expect(() => parseExposition(text)).toThrow();
  });
});

describe('the exposition of a daemon', () => {
  it('reads line by line as the text format says, with the process series under their old names', async () => {
    const metrics = createMetrics({ binary: 'vfio-manager', version: '1.0.0' });
    metrics.observeReconcile(true, 0.3);
    metrics.observeReconcile(false, 400);
    const families = parseExposition(await metrics.registry.metrics());
    for (const name of PROCESS_SERIES) expect(families.get(name)?.samples.length, name).toBe(1);
    expect(families.get('process_cpu_seconds_total')).toMatchObject({ type: 'counter' });
    expect(families.get('process_resident_memory_bytes')!.samples[0]!.value).toBeGreaterThan(1e6);
    const started = families.get('process_start_time_seconds')!.samples[0]!.value;
    expect(Math.abs(started - (Date.now() / 1000 - process.uptime()))).toBeLessThan(2);
    expect(families.get('nodejs_version_info')!.samples[0]!.labels).toEqual({
      version: process.version,
      major: process.versions.node.split('.')[0],
      minor: process.versions.node.split('.')[1],
      patch: process.versions.node.split('.')[2],
    });
    const duration = families.get('gpucc_reconcile_duration_seconds')!;
    expect(duration.type).toBe('histogram');
    const bucket = (le: string) => duration.samples.find((s) => s.labels.le === le)?.value;
    expect([bucket('0.25'), bucket('0.5'), bucket('300'), bucket('+Inf')]).toEqual([0, 1, 1, 2]);
    expect(duration.samples.filter((s) => s.name.endsWith('_sum'))[0]!.value).toBe(400.3);
  });
});

describe('Registry', () => {
  it('escapes help text and label values so they read back as they were', async () => {
    const registry = new Registry();
    const help = 'a \\ backslash, a "quote" and\na second line';
    const value = 'C:\\dir "quoted"\nnext line, {braces}=, ünïcode';
    registry.gauge({ name: 'odd', help, labelNames: ['path'] as const }).set({ path: value }, 1);
    const text = await registry.metrics();
    expect(text).toContain('# HELP odd a \\\\ backslash, a "quote" and\\na second line\n');
    expect(text).toContain('odd{path="C:\\\\dir \\"quoted\\"\\nnext line, {braces}=, ünïcode"} 1\n');
    const family = parseExposition(text).get('odd')!;
    expect(family.help).toBe(help);
    expect(family.samples[0]!.labels.path).toBe(value);
  });

  it('writes special floats as +Inf, -Inf and NaN, and others as Go reads them', async () => {
    const registry = new Registry();
    const gauge = registry.gauge({ name: 'g', help: 'h', labelNames: ['v'] as const });
    const values = [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NaN, 1e21, -0.5, 1.5e-7, 0];
    for (const [i, v] of values.entries()) gauge.set({ v: String(i) }, v);
    const text = await registry.metrics();
    expect(text.split('\n').filter((l) => l.startsWith('g{'))).toEqual([
      'g{v="0"} +Inf',
      'g{v="1"} -Inf',
      'g{v="2"} NaN',
      'g{v="3"} 1e+21',
      'g{v="4"} -0.5',
      'g{v="5"} 1.5e-7',
      'g{v="6"} 0',
    ]);
    expect(
      parseExposition(text)
        .get('g')!
        .samples.map((s) => s.value),
    ).toEqual(values);
  });

  it('keeps histogram buckets cumulative, le last and as prom-client wrote it, +Inf equal to the count', async () => {
    const registry = new Registry();
    const histogram = registry.histogram({
      name: 'wait_seconds',
      help: 'h',
      buckets: [0.025, 1, 10],
      labelNames: ['op'] as const,
    });
    for (const v of [0.01, 0.025, 0.5, 7, 11]) histogram.observe({ op: 'bind' }, v);
    histogram.observe({ op: 'unbind' }, 2);
    const text = await registry.metrics();
    expect(text).toBe(
      [
        '# HELP wait_seconds h',
        '# TYPE wait_seconds histogram',
        'wait_seconds_bucket{op="bind",le="0.025"} 2',
        'wait_seconds_bucket{op="bind",le="1"} 3',
        'wait_seconds_bucket{op="bind",le="10"} 4',
        'wait_seconds_bucket{op="bind",le="+Inf"} 5',
        'wait_seconds_sum{op="bind"} 18.535',
        'wait_seconds_count{op="bind"} 5',
        'wait_seconds_bucket{op="unbind",le="0.025"} 0',
        'wait_seconds_bucket{op="unbind",le="1"} 0',
        'wait_seconds_bucket{op="unbind",le="10"} 1',
        'wait_seconds_bucket{op="unbind",le="+Inf"} 1',
        'wait_seconds_sum{op="unbind"} 2',
        'wait_seconds_count{op="unbind"} 1',
        '',
      ].join('\n'),
    );
    parseExposition(text);
  });

  it('writes labels in the declared order whatever order the caller gives, one series per label set', async () => {
    const registry = new Registry();
    const counter = registry.counter({ name: 'ops_total', help: 'h', labelNames: ['resource', 'result'] as const });
    counter.inc({ result: 'success', resource: 'nvidia.com/GH100' });
    counter.inc({ resource: 'nvidia.com/GH100', result: 'success' }, 2);
    counter.inc({ result: 'failure', resource: 'nvidia.com/GH100' });
    const lines = (await registry.metrics()).split('\n').filter((l) => l.startsWith('ops_total'));
    expect(lines).toEqual([
      'ops_total{resource="nvidia.com/GH100",result="success"} 3',
      'ops_total{resource="nvidia.com/GH100",result="failure"} 1',
    ]);
  });

  it('serves a scrape-time collector, async ones included, in registration order', async () => {
    const registry = new Registry();
    let streams = 1;
    registry.collect('streams', 'open streams', 'gauge', () => [{ labels: { resource: 'a' }, value: streams }]);
    registry.collect('later', 'async', 'gauge', async () => [{ value: 7 }]);
    streams = 3;
    expect(await registry.metrics()).toBe(
      '# HELP streams open streams\n# TYPE streams gauge\nstreams{resource="a"} 3\n' +
        '# HELP later async\n# TYPE later gauge\nlater 7\n',
    );
  });

  it('refuses declarations and uses the format cannot carry with ERR_GPUCC_METRIC_INVALID', () => {
    const registry = new Registry();
    const counter = registry.counter({ name: 'c_total', help: 'h', labelNames: ['a'] as const });
    const invalid = { code: 'ERR_GPUCC_METRIC_INVALID' };
    expect(() => registry.gauge({ name: 'c_total', help: 'again' })).toThrow(expect.objectContaining(invalid));
    expect(() => registry.gauge({ name: 'bad-name', help: 'h' })).toThrow(expect.objectContaining(invalid));
    expect(() => registry.gauge({ name: 'g', help: 'h', labelNames: ['__x'] })).toThrow(
      expect.objectContaining(invalid),
    );
    expect(() => registry.histogram({ name: 'h', help: 'h', buckets: [1, 1] })).toThrow(
      expect.objectContaining(invalid),
    );
    expect(() => registry.histogram({ name: 'h2', help: 'h', buckets: [1], labelNames: ['le'] })).toThrow(
      expect.objectContaining(invalid),
    );
    expect(() => counter.inc({ a: 'x' }, -1)).toThrow(expect.objectContaining(invalid));
    expect(() => counter.inc({ b: 'x' } as never)).toThrow(/c_total: labels \{b\} given, \{a\} declared/);
  });
});

describe('a collector that fails at scrape time', () => {
  const servers: HealthServer[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.close();
  });

  it('leaves out its own family only, and is logged when it starts failing and when it recovers', async () => {
    const metrics = createMetrics({ binary: 'sandbox-device-plugin', version: '1.0.0' });
    let broken = true;
    metrics.registry.collect('gpucc_device_plugin_streams', 'streams', 'gauge', () => {
      if (broken) throw new Error('plugin state unreadable');
      return [{ value: 2 }];
    });
    metrics.registry.collect('bad_labels', 'h', 'gauge', () => [{ labels: { 'not-a-name': 'x' }, value: 1 }]);
    const out = captureLines();
    const logger = createLogger({ name: 't', format: 'json', level: 'info', destination: out.sink });
    const server = await startHealthServer({
      address: { host: '127.0.0.1', port: 0 },
      readiness: () => ({ ready: true }),
      registry: metrics.registry,
      logger,
    });
    servers.push(server);
    const scrape = async () => {
      const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe(CONTENT_TYPE);
      return parseExposition(await res.text());
    };
    const first = await scrape();
    await scrape();
    expect(first.has('gpucc_device_plugin_streams')).toBe(false);
    expect(first.has('bad_labels')).toBe(false);
    expect(first.get('gpucc_ready')!.samples[0]!.value).toBe(1);
    expect(first.has('process_cpu_seconds_total')).toBe(true);
    const failed = out.records.filter((r) => r.event === 'metrics.collect-failed');
    expect(failed.map((r) => [r.level, r.metric])).toEqual([
      ['error', 'gpucc_device_plugin_streams'],
      ['error', 'bad_labels'],
    ]);
    expect(failed[0]!.msg).toContain('plugin state unreadable');
    expect(failed[1]!.err).toMatchObject({ code: 'ERR_GPUCC_METRIC_INVALID' });
    broken = false;
    expect((await scrape()).get('gpucc_device_plugin_streams')!.samples[0]!.value).toBe(2);
    expect(out.records.filter((r) => r.event === 'metrics.collect-recovered').map((r) => r.metric)).toEqual([
      'gpucc_device_plugin_streams',
    ]);
  });
});
