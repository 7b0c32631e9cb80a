// The Prometheus text exposition format, version 0.0.4: docs/facts/prometheus-text-format.md#lines

/** What /metrics answers with; docs/facts/prometheus-text-format.md#content-type */
export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'untyped';

/** Label name → value, written in the order the object holds them. */
export type Labels = Readonly<Record<string, string>>;

/** One line of a family: `name` + `suffix` (`_bucket`, `_sum`, `_count` for a histogram), labels, value. */
export interface Sample {
  labels?: Labels;
  value: number;
  suffix?: string;
}

export interface MetricFamily {
  name: string;
  help: string;
  type: MetricType;
  samples: readonly Sample[];
}

// docs/facts/prometheus-text-format.md#names
export const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
export const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Help text: `\` and line feed escaped; docs/facts/prometheus-text-format.md#escaping */
export const escapeHelp = (help: string): string => help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

/** A label value: `\`, `"` and line feed escaped; docs/facts/prometheus-text-format.md#escaping */
export const escapeLabelValue = (value: string): string =>
  value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** A sample value or `le` bound as Go's ParseFloat reads it; docs/facts/prometheus-text-format.md#values */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}

function formatLabels(labels: Labels | undefined): string {
  if (labels === undefined) return '';
  const pairs = Object.entries(labels).map(([name, value]) => `${name}="${escapeLabelValue(value)}"`);
  return pairs.length === 0 ? '' : `{${pairs.join(',')}}`;
}

/** One family as a group of lines: HELP, TYPE, then every sample; each line ends in a line feed. */
export function formatFamily(family: MetricFamily): string {
  let text = `# HELP ${family.name} ${escapeHelp(family.help)}\n# TYPE ${family.name} ${family.type}\n`;
  for (const sample of family.samples) {
    text += `${family.name}${sample.suffix ?? ''}${formatLabels(sample.labels)} ${formatValue(sample.value)}\n`;
  }
  return text;
}
