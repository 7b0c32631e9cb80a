import type { DeviceRow, NodeView, OperandState } from './observe.js';
import { describeCc, type Problem } from './problems.js';

/** How the table is drawn: colour and width come from the terminal (or their absence when piped). */
export interface RenderOptions {
  color: boolean;
  /** The terminal's width; undefined when not a terminal (nothing is cut). */
  columns?: number;
}

/** Colour on a terminal unless NO_COLOR is set (any value, https://no-color.org) or TERM is dumb. */
export function renderOptionsFor(stream: { isTTY?: boolean; columns?: number }, env: NodeJS.ProcessEnv): RenderOptions {
  const tty = stream.isTTY === true;
  const color = tty && env.NO_COLOR === undefined && env.TERM !== 'dumb';
  return { color, ...(tty && stream.columns ? { columns: stream.columns } : {}) };
}

type Paint = (text: string) => string;
const sgr =
  (code: string): Paint =>
  (text) =>
    `\u001b[${code}m${text}\u001b[0m`;
const PAINTS = { bold: sgr('1'), dim: sgr('2'), red: sgr('31'), green: sgr('32'), yellow: sgr('33') } as const;
type PaintName = keyof typeof PAINTS;

interface Column {
  head: string;
  cell: (row: DeviceRow) => string;
  paint?: (row: DeviceRow) => PaintName | undefined;
  /** Dropped first when the terminal is narrow: higher = kept longer. */
  keep: number;
  /** May be cut with … down to this width. */
  min?: number;
}

const COLUMNS: Column[] = [
  { head: 'ADDRESS', cell: (r) => r.address, keep: 100 },
  { head: 'KIND', cell: (r) => r.kind, keep: 40 },
  { head: 'MODEL', cell: (r) => r.model, keep: 10, min: 10 },
  { head: 'NUMA', cell: (r) => (r.numaNode === null ? '-' : String(r.numaNode)), keep: 20 },
  {
    head: 'GROUP',
    cell: (r) =>
      r.iommuGroup === null
        ? '-'
        : r.groupMembers.length === 0
          ? String(r.iommuGroup)
          : `${r.iommuGroup} +${r.groupMembers.map(shortAddress).join(',')}`,
    keep: 50,
    min: 6,
  },
  {
    head: 'DRIVER',
    cell: (r) => r.driver ?? '-',
    paint: (r) => (r.vfioManager && r.driver !== r.vfioManager.targetDriver ? 'red' : undefined),
    keep: 90,
  },
  { head: 'VFIO', cell: (r) => r.vfioNodes.join(',') || '-', keep: 45, min: 8 },
  {
    head: 'MODE',
    cell: (r) => (r.cc ? describeCc(r.cc) || '-' : '?'),
    keep: 80,
  },
  { head: 'CDI', cell: (r) => r.cdi?.name ?? '-', keep: 60, min: 8 },
  {
    head: 'HEALTH',
    cell: (r) => r.advertised?.health ?? '-',
    paint: (r) =>
      r.advertised?.health === 'Healthy' ? 'green' : r.advertised?.health === 'Unhealthy' ? 'red' : undefined,
    keep: 85,
  },
  {
    head: 'POD',
    cell: (r) => r.allocations.map((a) => `${a.podUid.slice(0, 8)}/${a.container}`).join(',') || '-',
    keep: 70,
    min: 10,
  },
  {
    head: 'HOLDER',
    cell: (r) => r.holders.map((h) => `${h.comm}[${h.pid}]`).join(',') || '-',
    keep: 75,
    min: 10,
  },
];

/** `0000:13:00.1` → `13:00.1` for the group's members, where space is short. */
function shortAddress(address: string): string {
  return address.startsWith('0000:') ? address.slice(5) : address;
}

function cut(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, Math.max(0, width - 1))}…`;
}

/** The device table, fitted to the width: the least needed columns go first, then long cells are cut. */
export function deviceTable(rows: DeviceRow[], options: RenderOptions): { text: string; hidden: string[] } {
  const paint = (name: PaintName | undefined, text: string) => (options.color && name ? PAINTS[name](text) : text);
  let columns = COLUMNS;
  const cells = new Map(columns.map((c) => [c, rows.map(c.cell)]));
  const natural = (c: Column) => Math.max(c.head.length, ...cells.get(c)!.map((t) => t.length));
  const widths = new Map(columns.map((c) => [c, natural(c)]));
  const total = () => columns.reduce((sum, c) => sum + widths.get(c)!, 0) + 2 * (columns.length - 1);
  const hidden: string[] = [];
  if (options.columns !== undefined) {
    const limit = options.columns;
    // Drop the least needed columns while even their shortest cells do not fit; then cut the widest.
    const shortest = (c: Column) =>
      c.min === undefined ? widths.get(c)! : Math.min(widths.get(c)!, Math.max(c.min, c.head.length));
    const minTotal = () => columns.reduce((sum, c) => sum + shortest(c), 0) + 2 * (columns.length - 1);
    const byKeep = [...columns].sort((a, b) => a.keep - b.keep);
    while (minTotal() > limit && columns.length > 1) {
      const drop = byKeep.shift()!;
      columns = columns.filter((c) => c !== drop);
      hidden.push(drop.head);
    }
    for (const c of [...columns].filter((c) => c.min !== undefined).sort((a, b) => widths.get(b)! - widths.get(a)!)) {
      if (total() <= limit) break;
      widths.set(c, Math.max(shortest(c), widths.get(c)! - (total() - limit)));
    }
  }
  const line = (values: string[], paints: Array<PaintName | undefined>) =>
    values
      .map((v, i) => {
        const w = widths.get(columns[i]!)!;
        const text = cut(v, w);
        const padded = i === values.length - 1 ? text : text.padEnd(w);
        return paints[i] ? paint(paints[i], text) + padded.slice(text.length) : padded;
      })
      .join('  ')
      .trimEnd();
  const head = line(
    columns.map((c) => c.head),
    columns.map(() => 'bold'),
  );
  const body = rows.map((row, r) =>
    line(
      columns.map((c) => cells.get(c)![r]!),
      columns.map((c) => c.paint?.(row)),
    ),
  );
  return { text: [head, ...body].join('\n'), hidden };
}

const OPERAND_PAINT: Record<OperandState['state'], PaintName> = {
  ready: 'green',
  'not ready': 'red',
  seen: 'yellow',
  absent: 'dim',
};

/** The whole `gpucc status` screen: header, operands, devices, problems, what could not be read. */
export function formatStatus(view: NodeView, problems: Problem[], options: RenderOptions): string {
  const paint = (name: PaintName, text: string) => (options.color ? PAINTS[name](text) : text);
  const h = view.header;
  const facts = [
    `node ${h.nodeName ?? '(unknown)'}`,
    `TEE ${h.tee}`,
    h.kernelSource === 'host' ? `kernel ${h.kernel}` : `kernel ${h.kernel} (gpucc's own: no host proc/)`,
    ...(h.os ? [h.os] : []),
    ...(h.cpu ? [`CPU ${h.cpu}`] : []),
    `IOMMU ${h.iommu ? 'on' : 'off'}`,
    `VFIO ${h.vfioModel}`,
  ];
  const lines = [paint('bold', wrapItems(facts, ' · ', options.columns))];
  lines.push(
    wrapItems(
      view.operands.map((o) => `${o.name} ${paint(OPERAND_PAINT[o.state], o.state)}`),
      ' · ',
      options.columns,
    ),
  );
  lines.push('');
  if (view.devices.length === 0) lines.push('no NVIDIA GPU or NVSwitch on this host');
  else {
    const table = deviceTable(view.devices, options);
    lines.push(table.text);
    if (table.hidden.length > 0)
      lines.push(
        paint(
          'dim',
          wrapText(
            `(hidden to fit: ${table.hidden.join(', ')}; widen the terminal or use --output json)`,
            options.columns,
            '',
          ),
        ),
      );
  }
  lines.push('');
  if (problems.length === 0) lines.push(paint('green', 'no problems'));
  else {
    lines.push(paint('bold', `${problems.length} problem(s):`));
    for (const p of problems) {
      const head = wrapText(`${p.severity} ${p.subject}: ${p.message}`, options.columns, '  ');
      lines.push(paint(p.severity === 'error' ? 'red' : 'yellow', p.severity) + head.slice(p.severity.length));
      lines.push(wrapText(`  fix: ${p.fix}`, options.columns, '       '));
    }
  }
  if (view.unreadable.length > 0) {
    lines.push('');
    lines.push(paint('dim', 'not read:'));
    for (const u of view.unreadable) lines.push(paint('dim', wrapText(`  ${u}`, options.columns, '    ')));
  }
  return `${lines.join('\n')}\n`;
}

/** A long line broken at spaces to the width, the continuation lines indented; a word longer than the width is cut. */
function wrapText(text: string, width: number | undefined, indent: string): string {
  if (width === undefined || text.length <= width) return text;
  const out: string[] = [];
  let current = '';
  for (const word of text.split(' ')) {
    const next = current === '' ? word : `${current} ${word}`;
    if (current !== '' && current.trim() !== '' && next.length > width) {
      out.push(current);
      current = `${indent}${word}`;
    } else current = next;
  }
  out.push(current);
  return out.map((l) => cut(l, width)).join('\n');
}

/** Items joined on one line, or on several when the terminal is narrower. */
function wrapItems(items: string[], separator: string, width: number | undefined): string {
  if (width === undefined) return items.join(separator);
  const out: string[] = [];
  let current = '';
  for (const item of items) {
    const next = current === '' ? item : `${current}${separator}${item}`;
    if (current !== '' && visibleLength(next) > width) {
      out.push(current);
      current = item;
    } else current = next;
  }
  if (current !== '') out.push(current);
  return out.join('\n');
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: the escape that starts an SGR sequence
const SGR = /\u001b\[[0-9;]*m/g;

function visibleLength(text: string): number {
  return text.replace(SGR, '').length;
}
