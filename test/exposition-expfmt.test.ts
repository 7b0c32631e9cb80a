import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { createMetrics } from '@gpucc/daemon/runtime';
import { parseExposition } from '@gpucc/testbed/fixtures';
import { describe, expect, it } from 'vitest';

/**
 * What Prometheus itself reads from /metrics: the exposition goes through the Prometheus project's
 * own text parser (github.com/prometheus/common/expfmt, test/expfmt-reader, built once through the
 * Go module proxy by scripts/go-cached.sh), which must accept it and read the same families, help
 * texts, label values and numbers as the tests' strict reader. Skipped, saying why, without Go.
 */
const ROOT = path.resolve(import.meta.dirname, '..');

function buildReader(): { binary: string } | { why: string } {
  try {
    const script = path.join(ROOT, 'scripts/go-cached.sh');
    const args = [script, 'test/expfmt-reader', 'expfmt-reader', 'build'];
    return { binary: execFileSync('sh', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim() };
  } catch (error) {
    return { why: String((error as { stderr?: unknown }).stderr ?? error).trim() };
  }
}

interface GoFamily {
  name: string;
  help: string;
  type: string;
  samples: Array<{ name: string; labels: Record<string, string>; value: string }>;
}

const reader = buildReader();
const goValue = (text: string) => ({ '+Inf': Infinity, '-Inf': -Infinity, NaN: Number.NaN })[text] ?? Number(text);

describe.skipIf('why' in reader)(
  `the exposition read by Prometheus's own parser${'why' in reader ? ` (skipped: ${reader.why})` : ''}`,
  () => {
    it('accepts a daemon exposition and reads what the strict reader reads', async () => {
      const metrics = createMetrics({ binary: 'kata-manager', version: '1.2.3-rc.1+"quoted"' });
      metrics.observeReconcile(true, 0.02);
      metrics.observeReconcile(false, 1000);
      const odd = metrics.registry.gauge({ name: 'gpucc_test_odd', help: 'a \\ and\na line', labelNames: ['v'] });
      odd.set({ v: 'C:\\dir "q"\nünï' }, Number.NaN);
      odd.set({ v: 'inf' }, Number.POSITIVE_INFINITY);
      odd.set({ v: 'big' }, 1e21);
      odd.set({ v: 'small' }, -1.5e-7);
      const text = await metrics.registry.metrics();
      const binary = (reader as { binary: string }).binary;
      const read = JSON.parse(execFileSync(binary, { input: text, encoding: 'utf8' })) as GoFamily[];
      const ours = [...parseExposition(text).values()].sort((a, b) => (a.name < b.name ? -1 : 1));
      expect(read.map((f) => ({ ...f, samples: f.samples.map((s) => ({ ...s, value: goValue(s.value) })) }))).toEqual(
        ours,
      );
      expect(read.find((f) => f.name === 'gpucc_test_odd')!.samples[0]!.labels.v).toBe('C:\\dir "q"\nünï');
    });

    it('refuses what the format does not allow (so that the check above can fail)', () => {
      const binary = (reader as { binary: string }).binary;
      expect(() => execFileSync(binary, { input: 'a{x="\\q"} 1\n', stdio: 'pipe' })).toThrow(/invalid escape/);
    });
  },
);
