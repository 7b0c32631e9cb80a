import type { Logger } from '@gpucc/daemon';
import type { ReconcileOutcome } from '@gpucc/daemon/runtime';
import type { HostRoot } from '@gpucc/hal';
import { applyWrite, planWrite, type WriteOptions, type WriteResult } from './commands.js';
import { logWriteResult } from './log.js';
import type { SpecMetrics } from './metrics.js';
import type { OwnWrites } from './own-writes.js';

/**
 * One level-triggered reconcile of `run`: the CDI directory toward the specs the node needs now.
 * Not ok (readiness 503, retried with backoff) while a spec is refused, a write failed, another file
 * conflicts with ours, or a device cannot be named; a device that only waits for its node is not a
 * failure: the node's appearance is an event of its own. With `options.observer`, a reconcile that
 * follows change events reads only what they name (`details.pass`: `event`, else `full`).
 */
export async function reconcileOnce(
  sysfs: HostRoot,
  options: Omit<WriteOptions, 'dryRun'>,
  logger: Logger,
  metrics?: SpecMetrics,
  ownWrites?: OwnWrites,
): Promise<ReconcileOutcome> {
  let result: WriteResult;
  try {
    const planned = planWrite(sysfs, options);
    ownWrites?.expect(planned);
    result = await applyWrite(sysfs, planned);
  } catch (error) {
    options.observer?.invalidate();
    throw error;
  }
  ownWrites?.record(result);
  logWriteResult(logger, result);
  const report = result.report!;
  metrics?.observe(report);
  const count = (outcome: string) => report.results.filter((r) => r.outcome === outcome).length;
  const details = {
    specs: report.results.filter((r) => r.outcome === 'written' || r.outcome === 'unchanged').length,
    devices: result.generated.selection.devices.length,
    written: count('written'),
    removed: count('removed'),
    skipped: report.skipped.length,
    ...(options.observer?.lastPass ? { pass: options.observer.lastPass } : {}),
  };
  if (report.ok) return { ok: true, details };
  options.observer?.invalidate(); // the retry reads the whole host again
  const reasons = report.errors.map((e) => `${e.code}: ${e.message}`);
  return { ok: false, reason: reasons.join('; '), details: { ...details, problems: reasons.length } };
}
