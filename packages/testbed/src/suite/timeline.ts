/**
 * The suite's timeline: what the supervisor did and saw, and what the operands reported in their
 * JSON logs, in one time order. Only the events an operator follows are taken from the logs (plus
 * every warning and error), and a run of a per-device event from one actor is folded into one line.
 */
export interface TimelineEntry {
  /** Milliseconds since the suite started. */
  atMs: number;
  actor: string;
  text: string;
  /** Log level (pino numbers: 40 warn, 50 error); absent for the supervisor's own entries. */
  level?: number;
  /** The log event folded into this line, and how many times it came in a row. */
  event?: string;
  count?: number;
}

/** Log events that say what an operand did (the rest is detail for its own log). */
const NOTABLE_EVENTS = new Set([
  'bind.device',
  'bind.failed',
  'bind.refused',
  'cc.switch.start',
  'cc.switch.done',
  'cc.switch.failed',
  'cc.device.failed',
  'cc.operands.paused',
  'cc.operands.gone',
  'cc.operands.restore',
  'cc.operands.wait-timeout',
  'cc.state',
  'cc.mode.refused',
  'spec.written',
  'spec.removed',
  'spec.refused',
  'kubelet.registered',
  'kubelet.restart-detected',
  'allocate',
  'cc.rule',
  'daemon.stop',
]);

/** Events that come once per device: a run of them is one line with a count. */
const FOLDED_EVENTS = new Set(['bind.device', 'bind.failed', 'cc.device.failed']);

export class Timeline {
  readonly entries: TimelineEntry[] = [];
  private readonly lastFromLog = new Map<string, TimelineEntry>();
  constructor(private readonly startedAt: number) {}

  elapsed(now = Date.now()): number {
    return now - this.startedAt;
  }

  add(actor: string, text: string, at = Date.now()): TimelineEntry {
    const entry = { atMs: at - this.startedAt, actor, text };
    this.insert(entry);
    return entry;
  }

  /** Takes one operand log line; returns the entry when it was notable. */
  addLogLine(actor: string, line: string): TimelineEntry | undefined {
    const record = parseLogLine(line);
    if (!record) return undefined;
    const event = record.event ?? '';
    const notable = NOTABLE_EVENTS.has(event) || (record.level >= 40 && !EXPECTED_WARNINGS.has(event));
    if (!notable) return undefined;
    // The actor's previous log line, wherever other actors' entries have landed since.
    const last = this.lastFromLog.get(actor);
    if (last && FOLDED_EVENTS.has(event) && last.event === event) {
      last.count = (last.count ?? 1) + 1;
      return last;
    }
    const entry: TimelineEntry = {
      atMs: record.time - this.startedAt,
      actor,
      text: record.msg,
      level: record.level,
      ...(record.event !== undefined ? { event: record.event } : {}),
    };
    this.insert(entry);
    this.lastFromLog.set(actor, entry);
    return entry;
  }

  // Log lines are read a moment after they were written: keep the entries in time order.
  private insert(entry: TimelineEntry): void {
    let i = this.entries.length;
    while (i > 0 && (this.entries[i - 1]?.atMs ?? 0) > entry.atMs) i -= 1;
    this.entries.splice(i, 0, entry);
  }
}

const LEVEL_NUMBER: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

/** Warnings every start of an operand on a simulated node repeats: not news on the timeline. */
const EXPECTED_WARNINGS = new Set(['host.simulated']);

interface LogRecord {
  time: number;
  level: number;
  msg: string;
  event?: string;
}

function parseLogLine(line: string): LogRecord | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const value = JSON.parse(line) as Record<string, unknown>;
    // gpucc logs the level by name and the time as ISO text; pino's defaults are numbers.
    const level = typeof value.level === 'string' ? LEVEL_NUMBER[value.level] : value.level;
    const time = typeof value.time === 'string' ? Date.parse(value.time) : value.time;
    if (typeof time !== 'number' || Number.isNaN(time) || typeof level !== 'number') return undefined;
    return {
      time,
      level,
      msg: typeof value.msg === 'string' ? value.msg : String(value.event ?? ''),
      ...(typeof value.event === 'string' ? { event: value.event } : {}),
    };
  } catch {
    return undefined;
  }
}

const ACTOR_WIDTH = 'sandbox-device-plugin'.length;
const LEVEL_MARK: Record<number, string> = { 40: 'WARN ', 50: 'ERROR ', 60: 'FATAL ' };

/** One line per entry: `   3.55s  cc-manager             switching 8 GPU(s) to on`; a fold ends `(and 11 more)`. */
export function formatTimeline(entries: readonly TimelineEntry[]): string {
  // Wide enough for every operand's name, so lines printed one at a time still line up.
  const width = Math.max(ACTOR_WIDTH, ...entries.map((e) => e.actor.length));
  return entries
    .map((e) => {
      const count = e.count && e.count > 1 ? ` (and ${e.count - 1} more)` : '';
      const mark = e.level ? (LEVEL_MARK[e.level] ?? '') : '';
      return `${(e.atMs / 1000).toFixed(2).padStart(7)}s  ${e.actor.padEnd(width)}  ${mark}${e.text}${count}`;
    })
    .join('\n');
}
