// Renders bench/report.md and its charts (bench/charts/*.svg) from the package benchmarks' results in
// bench/out/*.json: `pnpm bench` runs it after the benchmarks; `pnpm exec tsx bench/render.ts` re-renders
// the last results alone. Everything but `main` is a pure function of the records, so the same records
// give the same bytes.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchResult } from './report.js';

/** One bench/out/<name>.json, with `name` from the file name. */
export interface BenchRecord {
  name: string;
  date: string;
  node: string;
  cpus?: number;
  cpuModel?: string;
  /** The machine's 1-minute load average when the benchmark ended. */
  loadAverage?: number;
  title?: string;
  detail?: string;
  notes?: string[];
  seconds?: number;
  results: BenchResult[];
}

export interface Point {
  gpus: number;
  value: number;
}

/** A sized figure of one package: its points in size order. */
export interface Series {
  bench: string;
  figure: string;
  unit: string;
  points: Point[];
}

export interface Chart {
  /** File name inside the chart directory. */
  file: string;
  svg: string;
}

/** The node sizes every size table and chart shows, measured or not. */
export const STANDARD_SIZES = [8, 64, 256];
/** The benchmarks in the order of the report (others follow by name): foundation first, then by binary. */
const ORDER = [
  'foundation',
  'vfio-manager',
  'kata-manager',
  'sandbox-device-plugin',
  'cc-manager',
  'footprint',
  'gpucc',
];

export function orderRecords(records: BenchRecord[]): BenchRecord[] {
  const rank = (name: string) => (ORDER.includes(name) ? ORDER.indexOf(name) : ORDER.length);
  return [...records].sort((a, b) => rank(a.name) - rank(b.name) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

// ---------------------------------------------------------------- targets

export type Verdict = 'met' | 'not met';

const TARGET = /^\s*(≤|<=|<|≥|>=|>|==|=)\s*([-+]?(?:\d+\.?\d*|\.\d+))\s*(.*?)\s*$/;

/**
 * Whether `value` meets a target such as `≤ 2000 ms`, `< 1.2` or `= 3`; undefined when the target is not
 * machine-checkable (no comparison, or a unit other than the result's).
 */
export function checkTarget(value: number, unit: string, target: string): Verdict | undefined {
  const m = TARGET.exec(target);
  if (!m) return undefined;
  const [, op, number, targetUnit] = m;
  if (targetUnit && targetUnit !== unit) return undefined;
  const t = Number(number);
  const ok = {
    '≤': value <= t,
    '<=': value <= t,
    '<': value < t,
    '≥': value >= t,
    '>=': value >= t,
    '>': value > t,
    '=': Math.abs(value - t) <= 1e-9 * Math.max(1, Math.abs(t)),
    '==': Math.abs(value - t) <= 1e-9 * Math.max(1, Math.abs(t)),
  }[op!];
  return ok ? 'met' : 'not met';
}

// ---------------------------------------------------------------- series

/** The sized results (`gpus` and `figure` set) of the records as series, in order of first appearance. */
export function sizedSeries(records: BenchRecord[]): Series[] {
  const series = new Map<string, Series>();
  for (const record of records) {
    for (const r of record.results) {
      if (r.gpus === undefined || r.figure === undefined) continue;
      const key = JSON.stringify([record.name, r.figure, r.unit]);
      let s = series.get(key);
      if (!s) {
        s = { bench: record.name, figure: r.figure, unit: r.unit, points: [] };
        series.set(key, s);
      }
      const same = s.points.findIndex((p) => p.gpus === r.gpus);
      if (same >= 0)
        s.points[same] = { gpus: r.gpus, value: r.value }; // the last one wins
      else s.points.push({ gpus: r.gpus, value: r.value });
    }
  }
  for (const s of series.values()) s.points.sort((a, b) => a.gpus - b.gpus);
  return [...series.values()];
}

/** The sizes of a size table or chart: the standard ones and any other measured. */
export function sizesOf(series: Series[]): number[] {
  const sizes = new Set(STANDARD_SIZES);
  for (const s of series) for (const p of s.points) sizes.add(p.gpus);
  return [...sizes].sort((a, b) => a - b);
}

// ---------------------------------------------------------------- formatting

/** A value for a table: integers as they are, others to about three significant digits. */
export function formatValue(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return Number(value.toPrecision(2)).toString();
}

const gpusLabel = (n: number) => `${n} GPU${n === 1 ? '' : 's'}`;

function cell(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** A result's name for a table: the indent of a sub-result becomes `↳ `. */
function resultName(name: string): string {
  return /^\s/.test(name) ? `↳ ${name.trim()}` : name;
}

function minute(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

function duration(seconds: number): string {
  const whole = Math.round(seconds);
  return whole < 60 ? `${whole} s` : `${Math.floor(whole / 60)} min ${whole % 60} s`;
}

function unique<T>(xs: Array<T | undefined>): T[] {
  return [...new Set(xs.filter((x): x is T => x !== undefined))];
}

// ---------------------------------------------------------------- markdown

/** A table with its columns padded to one width, as the formatter (`biome format`) lays it out. */
function table(header: string[], rows: string[][], align: Array<'l' | 'r'>): string {
  const length = (text: string) => [...text].length;
  const widths = header.map((h, i) => Math.max(3, length(h), ...rows.map((r) => length(r[i] ?? ''))));
  const pad = (text: string, i: number) => {
    const fill = ' '.repeat(widths[i]! - length(text));
    return align[i] === 'r' ? fill + text : text + fill;
  };
  const line = (cells: string[]) => `| ${widths.map((_, i) => pad(cells[i] ?? '', i)).join(' | ')} |`;
  const rule = widths.map((w, i) => (align[i] === 'r' ? `${'-'.repeat(w - 1)}:` : '-'.repeat(w)));
  return [line(header), `| ${rule.join(' | ')} |`, ...rows.map(line)].join('\n');
}

/** The table of one benchmark: every result, its target and whether it was met. */
export function resultsTable(record: BenchRecord): string {
  const rows = record.results.map((r) => {
    const verdict = r.target ? checkTarget(r.value, r.unit, r.target) : undefined;
    const met = r.target ? (verdict === undefined ? '—' : verdict === 'met' ? 'met' : '**not met**') : '';
    return [cell(resultName(r.name)), formatValue(r.value), cell(r.unit), cell(r.target ?? ''), met];
  });
  return table(['result', 'value', 'unit', 'target', 'met'], rows, ['l', 'r', 'l', 'l', 'l']);
}

/** The size table: one row per sized figure, one column per size, and the growth from the first to the last. */
export function sizeTable(series: Series[]): string {
  const sizes = sizesOf(series);
  const rows = series.map((s) => {
    const at = new Map(s.points.map((p) => [p.gpus, p.value]));
    const first = s.points[0]!;
    const last = s.points.at(-1)!;
    const growth =
      s.points.length >= 2 && first.value !== 0
        ? `×${formatValue(last.value / first.value)} (${first.gpus} → ${last.gpus})`
        : '';
    const values = sizes.map((n) => (at.has(n) ? formatValue(at.get(n)!) : '—'));
    return [cell(s.figure), cell(s.unit), ...values, growth];
  });
  return table(['figure', 'unit', ...sizes.map(gpusLabel), 'growth'], rows, [
    'l',
    'l',
    ...sizes.map(() => 'r' as const),
    'l',
  ]);
}

function slug(text: string): string {
  const s = text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
  return s || [...text].map((c) => `u${c.codePointAt(0)!.toString(16)}`).join('-');
}

/** Which series a chart draws: those with two sizes or more, grouped by unit in order of appearance. */
export function chartGroups(series: Series[]): Array<{ unit: string; series: Series[] }> {
  const groups = new Map<string, Series[]>();
  for (const s of series) {
    if (s.points.length < 2) continue;
    groups.set(s.unit, [...(groups.get(s.unit) ?? []), s]);
  }
  return [...groups].map(([unit, members]) => ({ unit, series: members }));
}

/**
 * bench/report.md and its charts from the records. `chartDir` is where the charts lie relative to the
 * markdown file.
 */
export function renderReport(input: BenchRecord[], chartDir = 'charts'): { markdown: string; charts: Chart[] } {
  const records = orderRecords(input);
  const charts: Chart[] = [];
  const out: string[] = [];
  const dates = records.map((r) => r.date).sort();
  const nodes = unique(records.map((r) => r.node));
  const cpus = unique(records.map((r) => r.cpus));
  const models = unique(records.map((r) => r.cpuModel));
  const seconds = records.reduce((sum, r) => sum + (r.seconds ?? 0), 0);
  const verdicts = records.flatMap((r) =>
    r.results.map((x) => (x.target ? checkTarget(x.value, x.unit, x.target) : undefined)),
  );

  out.push('# gpucc benchmarks', '');
  out.push(
    'Generated by `pnpm bench` (after `pnpm install && pnpm run build`, and `pnpm build:binaries` to ' +
      'measure the single executables), which runs the testbed’s benchmarks (`packages/testbed/bench/*.ts`) ' +
      'on simulated nodes, then `bench/render.ts` on their results in `bench/out/*.json`. ' +
      '`pnpm exec tsx bench/render.ts` re-renders this page from the last results alone. Do not edit it by hand.',
    '',
  );
  if (dates.length) {
    const span = dates[0] === dates.at(-1) ? minute(dates[0]!) : `${minute(dates[0]!)} to ${minute(dates.at(-1)!)}`;
    out.push(`- Run: ${span}`);
  }
  const machine = [
    nodes.length ? `Node ${nodes.join(', ')}` : '',
    cpus.length ? `${cpus.join(', ')} CPUs` : '',
    models.length ? models.join(', ') : '',
  ].filter(Boolean);
  if (machine.length) out.push(`- Machine: ${machine.join('; ')}`);
  if (seconds > 0) {
    const each = records.filter((r) => r.seconds !== undefined).map((r) => `${r.name} ${duration(r.seconds!)}`);
    out.push(`- Benchmarks’ run time: ${duration(seconds)} (${each.join(', ')})`);
  }
  const met = verdicts.filter((v) => v === 'met').length;
  const missed = verdicts.filter((v) => v === 'not met').length;
  out.push(`- Targets checked: ${met} met, ${missed} not met`);
  out.push(
    '- Timings are wall-clock times and vary with the machine and its load: compare runs on one machine, and ' +
      'sizes within one run.',
    '- A figure held against a reference measured in the same run (the Go reference device plugin, a bare ' +
      'Node.js process) is followed by the reference’s value and by `ours / reference` or `ours − reference`, ' +
      'which carries the target: those verdicts hold on any machine.',
    '',
  );

  const allSeries = sizedSeries(records);
  if (allSeries.length) {
    out.push('## Growth with node size', '');
    out.push(
      'The figures measured on simulated nodes of several sizes (the simulator’s `scale` profile with N GPUs, ' +
        'unless the benchmark says otherwise). Growth is the last size’s value over the first’s; ' +
        '— marks a size not measured. The charts draw every figure with two sizes or more, one chart per unit.',
      '',
    );
  }
  for (const record of records) {
    const series = allSeries.filter((s) => s.bench === record.name);
    if (!series.length) continue;
    out.push(`### ${record.name}`, '', sizeTable(series), '');
    for (const group of chartGroups(series)) {
      const file = `${record.name}-${slug(group.unit)}.svg`;
      const title = `${record.name}: ${group.unit} by node size`;
      charts.push({ file, svg: renderChart(title, group.unit, group.series) });
      out.push(`![${title}](${chartDir}/${file})`, '');
    }
  }

  out.push('## Results per benchmark', '');
  for (const record of records) {
    out.push(`### ${record.name}${record.title ? `: ${record.title}` : ''}`, '');
    const about = [
      minute(record.date),
      `Node ${record.node}`,
      record.cpus !== undefined ? `${record.cpus} CPUs` : '',
      record.loadAverage !== undefined ? `load average ${formatValue(record.loadAverage)}` : '',
      record.seconds !== undefined ? `${duration(record.seconds)} in all` : '',
      record.detail ?? '',
    ].filter(Boolean);
    out.push(`${about.join('; ')}.`, '');
    for (const note of record.notes ?? []) out.push(`> ${note}`, '');
    out.push(resultsTable(record), '');
  }
  return { markdown: `${out.join('\n').trimEnd()}\n`, charts };
}

// ---------------------------------------------------------------- SVG

/** Colour-blind-safe colours (Okabe–Ito, then Tableau), then dashes for more series. */
const COLOURS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#8C564B', '#7F7F7F'];
const DASHES = ['', '6 3', '2 3'];

function xml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const fixed = (n: number) => (Math.round(n * 10) / 10).toString();

/** Round tick values 1, 2, 5 × 10^k from 0 covering `max`. */
function linearTicks(max: number): number[] {
  if (!(max > 0)) return [0, 1];
  const rough = max / 5;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough)!;
  const count = Math.max(1, Math.ceil(max / step - 1e-9));
  return Array.from({ length: count + 1 }, (_, i) => Number((i * step).toPrecision(12)));
}

/** Decades covering [min, max], with 2 and 5 between them when there are few. */
function logTicks(min: number, max: number): number[] {
  const lo = Math.floor(Math.log10(min));
  const hi = Math.ceil(Math.log10(max));
  const ticks: number[] = [];
  for (let e = lo; e <= hi; e++) {
    for (const m of hi - lo <= 2 ? [1, 2, 5] : [1]) {
      const t = Number((m * 10 ** e).toPrecision(12));
      if (t <= 10 ** hi) ticks.push(t);
    }
  }
  return ticks;
}

/**
 * A line chart, as standalone SVG: one polyline (with a marker per point) per series, the node size on
 * a log-2 x axis, the values on a linear y axis from 0, or a log one when they span more than a factor
 * of 20; title, axis labels, grid and a legend with the series' figures.
 */
export function renderChart(title: string, unit: string, series: Series[]): string {
  const width = 760;
  const left = 72;
  const right = 24;
  const top = 44;
  const plotHeight = 300;
  const legendTop = top + plotHeight + 52;
  const height = legendTop + series.length * 20 + 12;
  const plotWidth = width - left - right;

  const sizes = sizesOf(series);
  const values = series.flatMap((s) => s.points.map((p) => p.value));
  const positive = values.filter((v) => v > 0);
  const minV = positive.length ? Math.min(...positive) : 1;
  const maxV = values.length ? Math.max(...values) : 1;
  const log = positive.length === values.length && values.length > 0 && maxV / minV > 20;

  const x0 = Math.log2(sizes[0]!) - 0.35;
  const x1 = Math.log2(sizes.at(-1)!) + 0.35;
  const x = (gpus: number) => left + ((Math.log2(gpus) - x0) / (x1 - x0)) * plotWidth;
  const yTicks = log ? logTicks(minV, maxV) : linearTicks(maxV * 1.05); // headroom above the top point
  const y = log
    ? (() => {
        const lo = Math.log10(yTicks[0]!);
        const hi = Math.log10(yTicks.at(-1)!);
        return (v: number) => top + plotHeight - ((Math.log10(v) - lo) / (hi - lo || 1)) * plotHeight;
      })()
    : (v: number) => top + plotHeight - (v / (yTicks.at(-1)! || 1)) * plotHeight;

  const e: string[] = [];
  e.push('<?xml version="1.0" encoding="UTF-8"?>');
  e.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      'font-family="Helvetica, Arial, sans-serif" font-size="12">',
  );
  e.push(`<title>${xml(title)}</title>`);
  e.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  e.push(`<text x="${width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${xml(title)}</text>`);

  // Grid, ticks and tick labels.
  e.push('<g class="grid" stroke="#e3e3e3" stroke-width="1">');
  for (const t of yTicks)
    e.push(`<line x1="${left}" y1="${fixed(y(t))}" x2="${left + plotWidth}" y2="${fixed(y(t))}"/>`);
  for (const n of sizes) e.push(`<line x1="${fixed(x(n))}" y1="${top}" x2="${fixed(x(n))}" y2="${top + plotHeight}"/>`);
  e.push('</g>');
  e.push('<g class="axes" stroke="#333333" stroke-width="1">');
  e.push(`<line x1="${left}" y1="${top + plotHeight}" x2="${left + plotWidth}" y2="${top + plotHeight}"/>`);
  e.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotHeight}"/>`);
  for (const t of yTicks) e.push(`<line x1="${left - 5}" y1="${fixed(y(t))}" x2="${left}" y2="${fixed(y(t))}"/>`);
  for (const n of sizes) {
    e.push(`<line x1="${fixed(x(n))}" y1="${top + plotHeight}" x2="${fixed(x(n))}" y2="${top + plotHeight + 5}"/>`);
  }
  e.push('</g>');
  e.push('<g class="tick-labels" fill="#333333">');
  for (const t of yTicks) {
    e.push(`<text x="${left - 8}" y="${fixed(y(t) + 4)}" text-anchor="end">${xml(formatValue(t))}</text>`);
  }
  for (const n of sizes) {
    e.push(`<text x="${fixed(x(n))}" y="${top + plotHeight + 20}" text-anchor="middle">${n}</text>`);
  }
  e.push('</g>');
  e.push(
    `<text x="${fixed(left + plotWidth / 2)}" y="${top + plotHeight + 40}" text-anchor="middle">` +
      'GPUs per node (log scale)</text>',
  );
  e.push(
    `<text transform="translate(18 ${fixed(top + plotHeight / 2)}) rotate(-90)" text-anchor="middle">` +
      `${xml(unit)}${log ? ' (log scale)' : ''}</text>`,
  );

  // The series, then the legend.
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length]!;
    const dash = DASHES[Math.floor(i / COLOURS.length) % DASHES.length]!;
    const dashAttr = dash ? ` stroke-dasharray="${dash}"` : '';
    const points = s.points.filter((p) => !log || p.value > 0);
    const coords = points.map((p) => `${fixed(x(p.gpus))},${fixed(y(p.value))}`).join(' ');
    e.push(`<g class="series" fill="${colour}">`);
    e.push(`<title>${xml(s.figure)}</title>`);
    e.push(`<polyline fill="none" stroke="${colour}" stroke-width="2"${dashAttr} points="${coords}"/>`);
    for (const p of points) {
      e.push(
        `<circle cx="${fixed(x(p.gpus))}" cy="${fixed(y(p.value))}" r="3.5">` +
          `<title>${xml(`${s.figure}, ${gpusLabel(p.gpus)}: ${formatValue(p.value)} ${s.unit}`)}</title></circle>`,
      );
    }
    e.push('</g>');
  });
  e.push('<g class="legend">');
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length]!;
    const dash = DASHES[Math.floor(i / COLOURS.length) % DASHES.length]!;
    const ly = legendTop + i * 20;
    e.push(
      `<line x1="${left}" y1="${ly}" x2="${left + 28}" y2="${ly}" stroke="${colour}" stroke-width="2"` +
        `${dash ? ` stroke-dasharray="${dash}"` : ''}/>`,
    );
    e.push(`<circle cx="${left + 14}" cy="${ly}" r="3.5" fill="${colour}"/>`);
    e.push(`<text x="${left + 38}" y="${ly + 4}">${xml(s.figure)}</text>`);
  });
  e.push('</g>');
  e.push('</svg>');
  return `${e.join('\n')}\n`;
}

// ---------------------------------------------------------------- files (the edge)

/** Every bench/out/*.json, in file-name order. */
export function readRecords(outDir: string): BenchRecord[] {
  return readdirSync(outDir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({ ...JSON.parse(readFileSync(path.join(outDir, f), 'utf8')), name: f.slice(0, -'.json'.length) }));
}

/** Writes `<benchDir>/report.md` and `<benchDir>/charts/*.svg` (removing charts no longer made). */
export function writeReport(benchDir: string): { markdown: string; charts: string[] } {
  const records = readRecords(path.join(benchDir, 'out'));
  if (!records.length) throw new Error(`no results in ${path.join(benchDir, 'out')}: run \`pnpm bench\` first`);
  const { markdown, charts } = renderReport(records, 'charts');
  const chartDir = path.join(benchDir, 'charts');
  rmSync(chartDir, { recursive: true, force: true });
  mkdirSync(chartDir, { recursive: true });
  for (const chart of charts) writeFileSync(path.join(chartDir, chart.file), chart.svg);
  const report = path.join(benchDir, 'report.md');
  writeFileSync(report, markdown);
  return { markdown: report, charts: charts.map((c) => path.join(chartDir, c.file)) };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const written = writeReport(import.meta.dirname);
  const relative = (p: string) => path.relative(process.cwd(), p);
  process.stdout.write(`wrote ${relative(written.markdown)} and ${written.charts.length} charts in bench/charts/\n`);
}
