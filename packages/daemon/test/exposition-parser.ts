/**
 * A strict reader of the Prometheus text format 0.0.4 (docs/facts/prometheus-text-format.md#lines),
 * written from the rules rather than from our writer: it throws, naming the line, on anything a
 * scraper could refuse or read differently.
 */

export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface ParsedFamily {
  name: string;
  help?: string;
  type?: string;
  samples: ParsedSample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const FLOAT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function unescaped(text: string, allowed: string, where: string): string {
  return text.replace(/\\(.?)/g, (_, c: string) => {
    if (!allowed.includes(c)) throw new Error(`${where}: invalid escape \\${c}`);
    return c === 'n' ? '\n' : c;
  });
}

function parseValue(text: string, where: string): number {
  if (text === 'NaN') return Number.NaN;
  if (text === '+Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  if (!FLOAT.test(text)) throw new Error(`${where}: "${text}" is not a float`);
  return Number(text);
}

function parseSample(line: string, where: string): ParsedSample {
  const name = NAME.exec(line)?.[0];
  if (name === undefined) throw new Error(`${where}: no metric name`);
  let rest = line.slice(name.length);
  const labels: Record<string, string> = {};
  if (rest.startsWith('{')) {
    rest = rest.slice(1);
    while (!rest.startsWith('}')) {
      const label = LABEL.exec(rest)?.[0];
      if (label === undefined) throw new Error(`${where}: bad label name at "${rest}"`);
      if (label in labels) throw new Error(`${where}: label ${label} repeated`);
      rest = rest.slice(label.length);
      if (!rest.startsWith('="')) throw new Error(`${where}: expected =" after ${label}`);
      rest = rest.slice(2);
      const end = /^(?:[^"\\]|\\.)*/.exec(rest)![0];
      if (rest[end.length] !== '"') throw new Error(`${where}: unterminated value of ${label}`);
      if (end.includes('\n')) throw new Error(`${where}: raw line feed in a label value`);
      labels[label] = unescaped(end, '\\"n', where);
      rest = rest.slice(end.length + 1);
      if (rest.startsWith(',')) rest = rest.slice(1);
      else if (!rest.startsWith('}')) throw new Error(`${where}: expected , or } at "${rest}"`);
    }
    rest = rest.slice(1);
  }
  const tail = /^ (\S+)(?: (-?\d+))?$/.exec(rest);
  if (!tail) throw new Error(`${where}: expected " <value> [<timestamp>]", got "${rest}"`);
  return { name, labels, value: parseValue(tail[1]!, where) };
}

/** Histogram rules: docs/facts/prometheus-text-format.md#histograms */
function checkHistogram(family: ParsedFamily): void {
  const series = new Map<string, { buckets: Array<[number, number]>; sum?: number; count?: number }>();
  for (const s of family.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const entry = series.get(key) ?? { buckets: [] };
    series.set(key, entry);
    if (s.name === `${family.name}_bucket`) {
      if (le === undefined) throw new Error(`${family.name}: a bucket without le`);
      entry.buckets.push([parseValue(le, family.name), s.value]);
    } else if (s.name === `${family.name}_sum`) entry.sum = s.value;
    else if (s.name === `${family.name}_count`) entry.count = s.value;
    else throw new Error(`${family.name}: sample ${s.name} does not belong to a histogram`);
  }
  for (const [key, { buckets, sum, count }] of series) {
    const where = `${family.name}${key}`;
    if (sum === undefined || count === undefined) throw new Error(`${where}: _sum or _count missing`);
    buckets.forEach(([le, n], i) => {
      if (i > 0 && !(le > buckets[i - 1]![0])) throw new Error(`${where}: le ${le} out of order`);
      if (i > 0 && n < buckets[i - 1]![1]) throw new Error(`${where}: buckets not cumulative at le ${le}`);
    });
    const last = buckets.at(-1);
    if (last?.[0] !== Number.POSITIVE_INFINITY || last[1] !== count) {
      throw new Error(`${where}: the +Inf bucket is missing or differs from _count`);
    }
  }
}

export function parseExposition(text: string): Map<string, ParsedFamily> {
  if (text !== '' && !text.endsWith('\n')) throw new Error('the last line does not end with a line feed');
  const families = new Map<string, ParsedFamily>();
  const seenSeries = new Set<string>();
  let current: ParsedFamily | undefined;
  const enter = (name: string, where: string): ParsedFamily => {
    if (current?.name === name) return current;
    if (families.has(name)) throw new Error(`${where}: family ${name} is not one group`);
    current = { name, samples: [] };
    families.set(name, current);
    return current;
  };
  text
    .split('\n')
    .slice(0, -1)
    .forEach((line, i) => {
      const where = `line ${i + 1} "${line}"`;
      if (line === '') return;
      const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      if (meta) {
        const family = enter(meta[2]!, where);
        if (meta[1] === 'HELP') {
          if (family.help !== undefined) throw new Error(`${where}: second HELP`);
          family.help = unescaped(meta[3]!, '\\n', where);
        } else {
          if (family.type !== undefined || family.samples.length > 0) throw new Error(`${where}: TYPE late or twice`);
          if (!TYPES.has(meta[3]!)) throw new Error(`${where}: unknown type`);
          family.type = meta[3];
        }
        return;
      }
      if (line.startsWith('#')) return;
      const sample = parseSample(line, where);
      const base = sample.name.replace(/_(bucket|sum|count)$/, '');
      const own = current && (current.name === sample.name || (current.type === 'histogram' && current.name === base));
      const family = own ? current! : enter(sample.name, where);
      const id = `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort())}`;
      if (seenSeries.has(id)) throw new Error(`${where}: the same series twice`);
      seenSeries.add(id);
      family.samples.push(sample);
    });
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return families;
}
