/** Anything pino can write lines to; a test's array-backed sink or process.stdout. */
export interface LineSink {
  write(chunk: string): unknown;
}

// Fields every line has, or that say nothing to a person at a terminal; `err` gets lines of its own.
const HIDDEN = new Set(['time', 'level', 'event', 'msg', 'pid', 'hostname', 'name', 'err']);
const COLORS: Record<string, string> = {
  trace: '\x1b[90m',
  debug: '\x1b[36m',
  info: '\x1b[32m',
  warn: '\x1b[33m',
  error: '\x1b[31m',
  fatal: '\x1b[35m',
};

function clock(time: unknown): string {
  const date = new Date(typeof time === 'string' || typeof time === 'number' ? time : Date.now());
  const two = (n: number) => String(n).padStart(2, '0');
  const ms = String(date.getMilliseconds()).padStart(3, '0');
  return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}.${ms}`;
}

function scalar(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? String(value);
}

/** key=value pairs; nested objects (details) are flattened with dotted keys. */
function pairs(record: Record<string, unknown>, skip: ReadonlySet<string> = new Set(), prefix = ''): string[] {
  const out: string[] = [];
  for (const [key, value] of Object.entries(record)) {
    if (skip.has(key)) continue;
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      out.push(...pairs(value as Record<string, unknown>, undefined, `${prefix}${key}.`));
    } else if (value !== undefined) {
      out.push(`${prefix}${key}=${scalar(value)}`);
    }
  }
  return out;
}

function errorLines(err: unknown): string[] {
  if (err === null || typeof err !== 'object') return [];
  const e = err as Record<string, unknown>;
  const head = typeof e.code === 'string' ? `${e.code}: ${String(e.message)}` : String(e.message ?? e.type);
  const lines = [`  error: ${head}`];
  if (typeof e.hint === 'string') lines.push(`  hint: ${e.hint}`);
  if (e.details !== null && typeof e.details === 'object') {
    lines.push(`  details: ${pairs(e.details as Record<string, unknown>).join(' ')}`);
  }
  if (e.cause !== undefined) lines.push(`  cause: ${typeof e.cause === 'string' ? e.cause : JSON.stringify(e.cause)}`);
  if (typeof e.code !== 'string' && typeof e.stack === 'string') {
    lines.push(
      ...e.stack
        .split('\n')
        .slice(1)
        .map((line) => `  ${line.trim()}`),
    );
  }
  return lines;
}

/** One pino JSON line as `HH:MM:SS.mmm LEVEL event msg key=value`, then error, hint and cause lines. */
export function formatPrettyLine(json: string, colors = false): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`; // not ours: pass it through untouched
  }
  const level = String(record.level ?? 'info');
  const tag = level.toUpperCase().padEnd(5);
  const head = [
    clock(record.time),
    colors ? `${COLORS[level] ?? ''}${tag}\x1b[0m` : tag,
    String(record.event ?? '-'),
    ...(record.msg === undefined || record.msg === '' ? [] : [String(record.msg)]),
    ...pairs(record, HIDDEN),
  ].join(' ');
  return `${[head, ...errorLines(record.err)].join('\n')}\n`;
}

/** A pino destination that prints each JSON line for a person: no pino-pretty, no worker thread. */
export function prettyStream(out: LineSink & { isTTY?: boolean } = process.stdout, colors = out.isTTY === true) {
  return {
    write(chunk: string): void {
      for (const line of chunk.split('\n')) if (line !== '') out.write(formatPrettyLine(line, colors));
    },
  };
}
