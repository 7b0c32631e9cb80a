// The one reporter of every package's benchmark (`pnpm bench`): a table on stdout and
// bench/out/<name>.json for comparisons across runs.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  target?: string;
}

/** Prints `<title> (<CPUs>, <Node>[; detail])`, then one aligned line per result, and saves the JSON. */
export function reportBench(
  name: string,
  title: string,
  results: BenchResult[],
  options: { detail?: string; extra?: Record<string, unknown> } = {},
): void {
  const width = Math.max(...results.map((r) => r.name.length));
  const detail = options.detail ? `; ${options.detail}` : '';
  process.stdout.write(`${title} (${os.cpus().length} CPUs, Node ${process.version}${detail})\n`);
  for (const r of results) {
    const target = r.target ? `  (target ${r.target})` : '';
    process.stdout.write(`${r.name.padEnd(width)}  ${r.value.toFixed(2).padStart(9)} ${r.unit}${target}\n`);
  }
  const out = path.resolve(import.meta.dirname, 'out');
  mkdirSync(out, { recursive: true });
  const record = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    ...options.extra,
    results,
  };
  writeFileSync(path.join(out, `${name}.json`), `${JSON.stringify(record, null, 2)}\n`);
}
