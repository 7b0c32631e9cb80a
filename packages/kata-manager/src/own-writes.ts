import type { PlannedWrite, WriteResult } from './commands.js';

/**
 * What kata-manager left in the CDI directory after its last reconcile, so that the directory
 * watch can tell the echo of its own writes (which need no reconcile: on a large node one costs tens
 * of milliseconds and delays the next real event) from a file deleted or replaced by someone else.
 */
export class OwnWrites {
  /** File name → the content we left there, or undefined for a file we removed. */
  private readonly files = new Map<string, string | undefined>();

  /** Before applying: what the plan is about to leave in the directory (events may come first). */
  expect(planned: PlannedWrite): void {
    const texts = new Map(planned.generated.specs.map((s) => [s.fileName, s.text]));
    for (const action of planned.plan.actions) {
      if (action.action === 'write' || action.action === 'unchanged')
        this.files.set(action.fileName, texts.get(action.fileName));
      else if (action.action === 'remove') this.files.set(action.fileName, undefined);
      else this.files.delete(action.fileName);
    }
  }

  /** After applying: a file that could not be written or removed is no longer ours to predict. */
  record(result: WriteResult): void {
    for (const r of result.report?.results ?? []) {
      if (r.outcome === 'refused' || r.outcome === 'failed') this.files.delete(r.fileName);
    }
  }

  /** Whether the file holds exactly what we left there (or is absent where we removed it). */
  isEcho(fileName: string, current: string | undefined): boolean {
    return this.files.has(fileName) && this.files.get(fileName) === current;
  }
}
