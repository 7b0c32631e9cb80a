// The one reporter of every package's benchmark (`pnpm bench`): a table on stdout and
// bench/out/<name>.json for comparisons across runs and for bench/render.ts (bench/report.md).
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  /** What the value should be, e.g. `≤ 2000 ms` or `= 3`; report.md checks `≤ < = ≥ >` targets. */
  target?: string;
  /** The node size (number of GPUs) when this result is one point of a figure measured at several sizes. */
  gpus?: number;
  /** With `gpus`: the figure's name without the size, the same at every size, e.g. `bind --all (cold)`. */
  figure?: string;
}

/**
 * A sized result: `name` is `<figure>, <n> GPUs`, so the table and the JSON agree. Leading spaces of
 * `figure` (a sub-result's indent in the table) stay in `name` only.
 */
export function sized(figure: string, gpus: number, value: number, unit: string, target?: string): BenchResult {
  const name = `${figure}, ${gpus} GPU${gpus === 1 ? '' : 's'}`;
  return { name, value, unit, ...(target ? { target } : {}), gpus, figure: figure.trim() };
}

export interface BenchOptions {
  /** Shown after the CPUs and Node version, e.g. the fake tool's latencies. */
  detail?: string;
  /** Notes for bench/report.md, e.g. which sizes were not measured and why. */
  notes?: string[];
  /** More fields for the JSON record. */
  extra?: Record<string, unknown>;
}

/** Prints `<title> (<CPUs>, <Node>[; detail])`, then one aligned line per result, and saves the JSON. */
export function reportBench(name: string, title: string, results: BenchResult[], options: BenchOptions = {}): void {
  const width = Math.max(...results.map((r) => r.name.length));
  const detail = options.detail ? `; ${options.detail}` : '';
  // Other work on the machine stretches every wall-clock figure: its load is part of the record.
  const load = Math.round(os.loadavg()[0]! * 10) / 10;
  process.stdout.write(`${title} (${os.cpus().length} CPUs, load ${load}, Node ${process.version}${detail})\n`);
  for (const r of results) {
    const target = r.target ? `  (target ${r.target})` : '';
    process.stdout.write(`${r.name.padEnd(width)}  ${r.value.toFixed(2).padStart(9)} ${r.unit}${target}\n`);
  }
  const seconds = Math.round(process.uptime() * 10) / 10;
  process.stdout.write(`(${seconds} s in all)\n`);
  const out = path.resolve(import.meta.dirname, 'out');
  mkdirSync(out, { recursive: true });
  const record = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model.trim(),
    loadAverage: load,
    title,
    ...(options.detail ? { detail: options.detail } : {}),
    ...(options.notes?.length ? { notes: options.notes } : {}),
    seconds,
    ...options.extra,
    results,
  };
  writeFileSync(path.join(out, `${name}.json`), `${JSON.stringify(record, null, 2)}\n`);
}

/** A figure measured in the same run that one of ours is held against, e.g. the Go reference plugin. */
export interface Reference {
  /** Its name in the table, e.g. `Go reference` or `bare Node.js`. */
  name: string;
  value: number;
  /** How ours is compared with it: `ours / reference` (unit ×) or `ours − reference` (the figure's unit). */
  by: 'ratio' | 'difference';
  /** The target of that ratio or difference, e.g. `≤ 3` or `≤ 150 ms`. */
  target?: string;
}

/**
 * A figure of ours beside references measured in the same run, so that its targets hold on any
 * machine: one result for ours, then for each reference its value and the ratio or difference that
 * carries the target. `subject` names the figure in those rows when it is not ours (e.g. `real`).
 */
export function compared(
  name: string,
  value: number,
  unit: string,
  references: Reference[],
  subject = 'ours',
): BenchResult[] {
  const results: BenchResult[] = [{ name, value, unit }];
  for (const r of references) {
    results.push({ name: `  ${r.name}, the same`, value: r.value, unit });
    const [label, v, u] =
      r.by === 'ratio'
        ? [`${subject} / ${r.name}`, value / r.value, '×']
        : [`${subject} − ${r.name}`, value - r.value, unit];
    results.push({ name: `  ${label}`, value: v, unit: u, ...(r.target ? { target: r.target } : {}) });
  }
  return results;
}
