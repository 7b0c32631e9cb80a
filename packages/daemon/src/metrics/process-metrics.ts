import type { MetricType } from './exposition.js';
import type { Collector } from './instruments.js';
import type { Registry } from './registry.js';

/** Time from now until the event loop runs a callback queued now; 0 when the loop is free. */
function eventLoopLag(): Promise<number> {
  const start = process.hrtime.bigint();
  return new Promise((resolve) => setImmediate(() => resolve(Number(process.hrtime.bigint() - start) / 1e9)));
}

/**
 * The process series operators scraped from prom-client's default metrics, under the same names
 * (docs/facts/prometheus-text-format.md#process-series), computed at scrape time from process.*
 * alone: nothing runs between scrapes, so an idle daemon stays asleep. Left out: the event-loop
 * percentiles, which need perf_hooks' monitorEventLoopDelay sampling all the time (at prom-client's
 * 100 ms resolution, measured on Node 20: about 13 ms of CPU per 10 s of idling and 0.8 MB of RSS);
 * the GC histogram, active handles and requests; and the /proc reads (open and max fds, virtual
 * memory), which only packages/hal may do.
 */
export function registerProcessMetrics(registry: Registry): void {
  const startSeconds = Math.round(Date.now() / 1000 - process.uptime());
  const cpu = (pick: (usage: NodeJS.CpuUsage) => number) => () => [{ value: pick(process.cpuUsage()) / 1e6 }];
  const memory = (pick: (usage: NodeJS.MemoryUsage) => number) => () => [{ value: pick(process.memoryUsage()) }];
  const [major = '', minor = '', patch = ''] = process.versions.node.split('.');
  const families: Array<[name: string, help: string, type: MetricType, collect: Collector['collect']]> = [
    [
      'process_cpu_user_seconds_total',
      'CPU time this process spent in user mode, in seconds.',
      'counter',
      cpu((u) => u.user),
    ],
    [
      'process_cpu_system_seconds_total',
      'CPU time this process spent in the kernel, in seconds.',
      'counter',
      cpu((u) => u.system),
    ],
    [
      'process_cpu_seconds_total',
      'CPU time this process spent, user and kernel together, in seconds.',
      'counter',
      cpu((u) => u.user + u.system),
    ],
    [
      'process_start_time_seconds',
      'When this process started, in Unix seconds.',
      'gauge',
      () => [{ value: startSeconds }],
    ],
    [
      'process_resident_memory_bytes',
      'Resident set size of this process, in bytes.',
      'gauge',
      () => [{ value: process.memoryUsage.rss() }],
    ],
    ['nodejs_heap_size_total_bytes', 'V8 heap reserved, in bytes.', 'gauge', memory((m) => m.heapTotal)],
    ['nodejs_heap_size_used_bytes', 'V8 heap in use, in bytes.', 'gauge', memory((m) => m.heapUsed)],
    [
      'nodejs_external_memory_bytes',
      'Memory of C++ objects bound to JavaScript objects (buffers among them), in bytes.',
      'gauge',
      memory((m) => m.external),
    ],
    [
      'nodejs_eventloop_lag_seconds',
      'How long a callback queued at this scrape waited for the event loop, in seconds.',
      'gauge',
      async () => [{ value: await eventLoopLag() }],
    ],
    [
      'nodejs_version_info',
      'Always 1; the labels say which Node.js runs this process.',
      'gauge',
      () => [{ labels: { version: process.version, major, minor, patch }, value: 1 }],
    ],
  ];
  for (const [name, help, type, collect] of families) registry.collect(name, help, type, collect);
}
