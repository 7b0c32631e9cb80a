import { isGpuccError } from '@gpucc/hal';

/** A CLI's `--output json`: indented, one trailing newline, every GpuccError inside in its JSON form. */
export function jsonText(value: unknown): string {
  return `${JSON.stringify(value, (_key, inner: unknown) => (isGpuccError(inner) ? inner.toJSON() : inner), 2)}\n`;
}
