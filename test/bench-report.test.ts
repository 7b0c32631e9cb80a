// bench/render.ts: the pure functions that turn bench/out/*.json records into bench/report.md and its
// SVG charts, on small synthetic records.
import { describe, expect, it } from 'vitest';
import {
  type BenchRecord,
  chartGroups,
  checkTarget,
  formatValue,
  renderChart,
  renderReport,
  resultsTable,
  type Series,
  sizedSeries,
  sizeTable,
} from '../bench/render.js';
import { compared, sized } from '../bench/report.js';

const record = (name: string, results: BenchRecord['results'], more: Partial<BenchRecord> = {}): BenchRecord => ({
  name,
  date: '2026-01-02T03:04:05.000Z',
  node: 'v20.20.2',
  cpus: 2,
  results,
  ...more,
});

/** A markdown table line's cells, trimmed (the table pads them to one width); an escaped pipe stays one cell. */
const cells = (line: string) =>
  line
    .slice(1, -1)
    .split(/(?<!\\)\|/)
    .map((c) => c.trim());
/** The lines of the markdown that are table rows with these cells. */
const rowsOf = (markdown: string) =>
  markdown
    .split('\n')
    .filter((l) => l.startsWith('|'))
    .map(cells);

/** Well-formed XML: one root, tags nested and closed, attributes quoted, only the five entities or numeric ones. */
function checkWellFormed(text: string): string {
  const body = text.replace(/^<\?xml[^?]*\?>\s*/, '');
  const stack: string[] = [];
  let root = '';
  let i = 0;
  while (i < body.length) {
    const lt = body.indexOf('<', i);
    const chunk = lt < 0 ? body.slice(i) : body.slice(i, lt);
    if (/&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/.test(chunk)) throw new Error(`bad entity in ${chunk}`);
    if (!stack.length && chunk.trim()) throw new Error(`text outside the root: ${chunk}`);
    if (lt < 0) break;
    const gt = body.indexOf('>', lt);
    if (gt < 0) throw new Error('unclosed tag');
    const tag = body.slice(lt + 1, gt);
    i = gt + 1;
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim();
      if (stack.pop() !== name) throw new Error(`</${name}> closes the wrong element`);
      continue;
    }
    const m = /^([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)$/.exec(tag);
    if (!m) throw new Error(`malformed tag <${tag}>`);
    const attributes = [...m[2]!.matchAll(/([\w:-]+)=/g)].map((a) => a[1]);
    if (new Set(attributes).size !== attributes.length) throw new Error(`repeated attribute in <${tag}>`);
    if (!stack.length) {
      if (root) throw new Error('two roots');
      root = m[1]!;
    }
    if (!m[3]) stack.push(m[1]!);
    else if (!stack.length) throw new Error('empty root');
  }
  if (stack.length) throw new Error(`unclosed <${stack.at(-1)}>`);
  return root;
}

describe('the well-formedness check of these tests', () => {
  it('rejects what an XML parser would', () => {
    expect(checkWellFormed('<svg xmlns="x"><g><line x1="1"/></g></svg>')).toBe('svg');
    for (const bad of ['<svg><g></svg>', '<svg>a & b</svg>', '<svg x=1></svg>', '<svg/><svg/>', '<svg a="1" a="2"/>']) {
      expect(() => checkWellFormed(bad), bad).toThrow();
    }
  });
});

describe('checkTarget', () => {
  it('compares with the target when its unit is the result’s or absent', () => {
    expect(checkTarget(302, 'ms', '≤ 2000 ms')).toBe('met');
    expect(checkTarget(2500, 'ms', '≤ 2000 ms')).toBe('not met');
    expect(checkTarget(3, 'writes', '= 3')).toBe('met');
    expect(checkTarget(3.5, 'writes', '= 3')).toBe('not met');
    expect(checkTarget(1.19, '×', '≤ 1.2')).toBe('met');
    expect(checkTarget(1.2, '×', '< 1.2')).toBe('not met');
    expect(checkTarget(10, 'ms', '>= 10')).toBe('met');
    expect(checkTarget(0, 'writes', '= 0')).toBe('met');
  });

  it('leaves a target it cannot check undecided', () => {
    expect(checkTarget(64, 'MB', '≤ 56 ms')).toBeUndefined();
    expect(checkTarget(64, 'MB', 'about 56 MB')).toBeUndefined();
    expect(checkTarget(64, 'MB', '')).toBeUndefined();
  });
});

describe('resultsTable', () => {
  it('shows each value, its target and whether it was met', () => {
    const md = resultsTable(
      record('pkg', [
        { name: 'bind, 256 GPUs', value: 302.6906, unit: 'ms', target: '≤ 2000 ms' },
        { name: '  writes per device', value: 4, unit: 'writes', target: '= 3' },
        { name: 'start | stop', value: 0.123456, unit: 'ms' },
        { name: 'RSS', value: 64.9, unit: 'MB', target: 'small' },
      ]),
    );
    expect(rowsOf(md)).toEqual([
      ['result', 'value', 'unit', 'target', 'met'],
      ['-------------------', '----:', '------', '---------', '-----------'],
      ['bind, 256 GPUs', '303', 'ms', '≤ 2000 ms', 'met'],
      ['↳ writes per device', '4', 'writes', '= 3', '**not met**'],
      ['start \\| stop', '0.12', 'ms', '', ''],
      ['RSS', '64.9', 'MB', 'small', '—'],
    ]);
    // Padded as `biome format` pads them, so that `pnpm lint` passes on the generated report.
    const widths = md.split('\n').map((line) => [...line].length);
    expect(new Set(widths).size).toBe(1);
    expect(md.split('\n')[2]).toBe('| bind, 256 GPUs      |   303 | ms     | ≤ 2000 ms | met         |');
  });

  it('shows a figure compared with references of the same run: theirs, then the ratio or difference that has the target', () => {
    const results = compared('exec → registered', 240, 'ms', [
      { name: 'Go reference', value: 60, by: 'ratio', target: '≤ 3 ×' },
      { name: 'bare Node.js', value: 50, by: 'difference', target: '≤ 150 ms' },
    ]);
    expect(rowsOf(resultsTable(record('pkg', results))).slice(2)).toEqual([
      ['exec → registered', '240', 'ms', '', ''],
      ['↳ Go reference, the same', '60', 'ms', '', ''],
      ['↳ ours / Go reference', '4', '×', '≤ 3 ×', '**not met**'],
      ['↳ bare Node.js, the same', '50', 'ms', '', ''],
      ['↳ ours − bare Node.js', '190', 'ms', '≤ 150 ms', '**not met**'],
    ]);
    const faster = compared('Allocate p50', 1, 'ms', [
      { name: 'Go reference', value: 0.8, by: 'ratio', target: '≤ 2 ×' },
    ]);
    expect(rowsOf(resultsTable(record('pkg', faster))).at(-1)).toEqual([
      '↳ ours / Go reference',
      '1.25',
      '×',
      '≤ 2 ×',
      'met',
    ]);
  });

  it('formats values to about three significant digits', () => {
    expect([302.69, 50.72, 4.3614, 0.6415, 3, 0].map(formatValue)).toEqual(['303', '50.7', '4.36', '0.64', '3', '0']);
  });
});

describe('sizedSeries', () => {
  const records = [
    record('vfio', [
      sized('bind --all (cold)', 256, 300, 'ms', '≤ 2000 ms'),
      { name: 'process wall time', value: 266, unit: 'ms' },
      sized('bind --all (cold)', 8, 50, 'ms'),
      sized('  writes per device', 8, 3, 'writes'),
      sized('bind --all (cold)', 64, 95, 'ms'),
      sized('  writes per device', 256, 3, 'writes'),
    ]),
    record('kata', [sized('bind --all (cold)', 8, 7, 'ms')]),
  ];

  it('makes one series per benchmark, figure and unit, with its points in size order', () => {
    const series = sizedSeries(records);
    expect(series.map((s) => [s.bench, s.figure, s.unit])).toEqual([
      ['vfio', 'bind --all (cold)', 'ms'],
      ['vfio', 'writes per device', 'writes'],
      ['kata', 'bind --all (cold)', 'ms'],
    ]);
    expect(series[0]!.points).toEqual([
      { gpus: 8, value: 50 },
      { gpus: 64, value: 95 },
      { gpus: 256, value: 300 },
    ]);
    expect(series[1]!.points.map((p) => p.gpus)).toEqual([8, 256]);
  });

  it('shows a figure missing a size in the size table, with a dash for it', () => {
    const rows = rowsOf(sizeTable(sizedSeries(records).filter((s) => s.bench === 'vfio')));
    expect(rows[0]).toEqual(['figure', 'unit', '8 GPUs', '64 GPUs', '256 GPUs', 'growth']);
    expect(rows[2]).toEqual(['bind --all (cold)', 'ms', '50', '95', '300', '×6 (8 → 256)']);
    expect(rows[3]).toEqual(['writes per device', 'writes', '3', '—', '3', '×1 (8 → 256)']);
  });

  it('adds a column for another size measured, and charts only figures with two sizes or more', () => {
    const series = sizedSeries([
      record('cc', [
        sized('switch', 1, 2700, 'ms'),
        sized('switch', 8, 3200, 'ms'),
        sized('one by one', 8, 17_000, 'ms'),
      ]),
    ]);
    const rows = rowsOf(sizeTable(series));
    expect(rows[0]).toEqual(['figure', 'unit', '1 GPU', '8 GPUs', '64 GPUs', '256 GPUs', 'growth']);
    expect(rows[3]).toEqual(['one by one', 'ms', '—', '17000', '—', '—', '']);
    expect(chartGroups(series)).toEqual([{ unit: 'ms', series: [series[0]] }]);
  });
});

describe('renderChart', () => {
  const series: Series[] = [
    {
      bench: 'b',
      figure: 'bind --all (cold)',
      unit: 'ms',
      points: [
        { gpus: 8, value: 50 },
        { gpus: 64, value: 95 },
        { gpus: 256, value: 300 },
      ],
    },
    {
      bench: 'b',
      figure: 'generate <in process> & more',
      unit: 'ms',
      points: [
        { gpus: 8, value: 4 },
        { gpus: 256, value: 130 },
      ],
    },
  ];

  it('is a standalone, well-formed SVG with one polyline per series and a legend with their names', () => {
    const svg = renderChart('b: ms by node size', 'ms', series);
    expect(checkWellFormed(svg)).toBe('svg');
    expect(svg).toMatch(/^<\?xml version="1\.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    const polylines = [...svg.matchAll(/<polyline [^>]*points="([^"]*)"/g)].map((m) => m[1]!.split(' ').length);
    expect(polylines).toEqual([3, 2]); // the figure missing 64 GPUs still draws its two points
    expect(svg).toContain('>bind --all (cold)</text>');
    expect(svg).toContain('>generate &lt;in process&gt; &amp; more</text>');
    for (const tick of ['>8</text>', '>64</text>', '>256</text>', 'GPUs per node (log scale)']) {
      expect(svg).toContain(tick);
    }
  });

  it('puts the sizes on a log-2 x axis: 8, 64 and 256 equally spaced per doubling', () => {
    const svg = renderChart('t', 'ms', series);
    const xs = [...svg.matchAll(/<polyline [^>]*points="([^"]*)"/g)][0]![1]!
      .split(' ')
      .map((p) => Number(p.split(',')[0]));
    expect((xs[1]! - xs[0]!) / 3).toBeCloseTo((xs[2]! - xs[1]!) / 2, 0); // 8→64: 3 doublings, 64→256: 2
  });

  it('uses a log y axis when the values span more than a factor of 20, a linear one from 0 otherwise', () => {
    expect(renderChart('t', 'ms', series)).toContain('ms (log scale)');
    const flat = renderChart('t', 'writes', [
      { bench: 'b', figure: 'writes', unit: 'writes', points: [8, 64, 256].map((gpus) => ({ gpus, value: 3 })) },
    ]);
    expect(checkWellFormed(flat)).toBe('svg');
    expect(flat).not.toContain('writes (log scale)');
    expect(flat).toContain('>0</text>');
    expect(flat).toContain('>writes</text>');
  });
});

describe('renderReport', () => {
  const records = [
    record(
      'vfio-manager',
      [
        sized('bind --all (cold)', 8, 50, 'ms'),
        sized('bind --all (cold)', 64, 95, 'ms'),
        sized('bind --all (cold)', 256, 2500, 'ms', '≤ 2000 ms'),
        sized('reads on the converged node', 8, 81, 'reads'),
        sized('reads on the converged node', 256, 2313, 'reads'),
      ],
      { title: 'vfio-manager benchmarks', seconds: 12.5, date: '2026-01-02T03:10:00.000Z' },
    ),
    record('foundation', [{ name: 'discovery', value: 90, unit: 'ms', target: '≤ 100 ms' }], {
      notes: ['Measured at 256 GPUs only.'],
      seconds: 70,
    }),
  ];

  it('writes the header, a size table and linked charts, then a table per benchmark', () => {
    const { markdown, charts } = renderReport(records);
    expect(charts.map((c) => c.file)).toEqual(['vfio-manager-ms.svg', 'vfio-manager-reads.svg']);
    for (const chart of charts) {
      expect(markdown).toContain(`](charts/${chart.file})`);
      expect(checkWellFormed(chart.svg)).toBe('svg');
    }
    expect(markdown).toContain('- Run: 2026-01-02 03:04 UTC to 2026-01-02 03:10 UTC');
    expect(markdown).toContain('- Machine: Node v20.20.2; 2 CPUs');
    expect(markdown).toContain('- Benchmarks’ run time: 1 min 23 s (foundation 1 min 10 s, vfio-manager 13 s)');
    expect(markdown).toContain('- Targets checked: 1 met, 1 not met');
    expect(markdown).toContain('`pnpm bench`');
    const rows = rowsOf(markdown);
    expect(rows).toContainEqual(['bind --all (cold)', 'ms', '50', '95', '2500', '×50 (8 → 256)']);
    expect(rows).toContainEqual(['reads on the converged node', 'reads', '81', '—', '2313', '×28.6 (8 → 256)']);
    expect(rows).toContainEqual(['bind --all (cold), 256 GPUs', '2500', 'ms', '≤ 2000 ms', '**not met**']);
    expect(markdown).toContain('> Measured at 256 GPUs only.');
    // foundation comes first, whatever the order of the files.
    expect(markdown.indexOf('### foundation')).toBeLessThan(markdown.indexOf('### vfio-manager: vfio-manager'));
  });

  it('gives the same bytes for the same records, in any order', () => {
    const a = renderReport(records);
    const b = renderReport([...records].reverse());
    expect(b).toEqual(a);
    expect(renderReport(records, 'elsewhere').markdown).toContain('](elsewhere/vfio-manager-ms.svg)');
  });
});
