/**
 * Counts every access that goes through a HostRoot, per attribute, so tests and benchmarks can assert on
 * them. The counters are bounded (one entry per attribute name); the write log, which grows with every
 * write, is kept only when asked for (tests, benchmarks, the simulator), never in a daemon's HostRoot.
 */
export interface WriteRecord {
  path: string;
  value: string;
  /** `ok`, an errno such as `EBUSY`, or `timeout`. */
  result: string;
}

export class AccessRecorder {
  reads = 0;
  writes = 0;
  readonly readsByAttribute = new Map<string, number>();
  readonly writesByAttribute = new Map<string, number>();
  readonly writeLog: WriteRecord[] = [];
  readonly keepsWriteLog: boolean;

  constructor(options: { writeLog?: boolean } = {}) {
    this.keepsWriteLog = options.writeLog ?? true;
  }

  recordRead(relPath: string): void {
    this.reads++;
    const attr = attributeName(relPath);
    this.readsByAttribute.set(attr, (this.readsByAttribute.get(attr) ?? 0) + 1);
  }

  recordWrite(relPath: string, value: string, result: string): void {
    this.writes++;
    const attr = attributeName(relPath);
    this.writesByAttribute.set(attr, (this.writesByAttribute.get(attr) ?? 0) + 1);
    if (this.keepsWriteLog) this.writeLog.push({ path: relPath, value, result });
  }

  reset(): void {
    this.reads = 0;
    this.writes = 0;
    this.readsByAttribute.clear();
    this.writesByAttribute.clear();
    this.writeLog.length = 0;
  }

  snapshot(): { reads: number; writes: number; writesByAttribute: Record<string, number> } {
    return { reads: this.reads, writes: this.writes, writesByAttribute: Object.fromEntries(this.writesByAttribute) };
  }
}

/** The attribute a path names: its last component (`driver_override`, `bind`, `reset`...). */
export function attributeName(relPath: string): string {
  const slash = relPath.lastIndexOf('/');
  return slash < 0 ? relPath : relPath.slice(slash + 1);
}
