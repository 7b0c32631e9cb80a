/**
 * The gate every spec passes before it is written or printed: the bytes are parsed back as a CDI
 * loader would read them, then checked against the official schema (Ajv) and the rules the schema
 * misses. Checking the rendered text, not the object it came from, catches rendering mistakes too
 * (an unquoted numeric name reads back as a number).
 */

import { GpuccError } from '@gpucc/hal';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { cdiRuleProblems, type SpecProblem } from './rules.js';
import { validate as generatedValidator } from './schema/cdi-validator.generated.js';

export type SpecFormat = 'yaml' | 'json';

/**
 * The official schema (./schema/cdi-schema.ts), compiled ahead of time by scripts/gen-cdi-validator.mjs
 * with Ajv's standalone mode, `strict: false` because defs.json carries a `"ref"` typo that strict
 * mode rejects as an unknown keyword (docs/facts/cdi.md#the-schema-and-its-typo).
 */
const compiledSchema = generatedValidator as unknown as ValidateFunction;

/** Problems the official JSON schema finds; [] when it accepts the spec. */
export function schemaProblems(spec: unknown): SpecProblem[] {
  if (compiledSchema(spec)) return [];
  return (compiledSchema.errors ?? []).map((e: ErrorObject) => ({
    path: e.instancePath,
    message: e.message ?? e.keyword,
  }));
}

/** Schema and rules together: [] for a spec that every CDI loader accepts. */
export function specProblems(spec: unknown): SpecProblem[] {
  const schema = schemaProblems(spec);
  // The rules assume the schema's types; on a malformed spec its own errors say enough.
  return schema.length > 0 ? schema : cdiRuleProblems(spec);
}

/**
 * Parses spec text as the Go loader does: YAML 1.1 (sigs.k8s.io/yaml), which also reads JSON, with
 * duplicate keys refused. Throws the parser's error.
 */
export function parseSpecText(text: string, format: SpecFormat): unknown {
  return format === 'json' ? JSON.parse(text) : parseYaml(text, { version: '1.1', uniqueKeys: true, strict: true });
}

// Texts that passed, most recent last: the daemon renders the same bytes on every reconcile, and the
// writer re-checks what generate already checked; parsing a 256-device spec again costs ~30 ms.
const passed = new Map<string, unknown>();
const PASSED_MEMO_SIZE = 16;

/** The parsed spec when `text` is valid; ERR_GPUCC_CDI_SPEC_INVALID listing every problem otherwise. */
export function checkSpecText(text: string, format: SpecFormat, label: string): unknown {
  const key = `${format}:${text}`;
  if (passed.has(key)) return passed.get(key);
  let parsed: unknown;
  try {
    parsed = parseSpecText(text, format);
  } catch (error) {
    throw invalidSpec(label, [{ path: '', message: `not valid ${format.toUpperCase()}: ${(error as Error).message}` }]);
  }
  const problems = specProblems(parsed);
  if (problems.length > 0) throw invalidSpec(label, problems);
  passed.set(key, parsed);
  if (passed.size > PASSED_MEMO_SIZE) passed.delete(passed.keys().next().value!);
  return parsed;
}

export function invalidSpec(label: string, problems: SpecProblem[]): GpuccError {
  const shown = problems
    .slice(0, 5)
    .map((p) => `${p.path || '/'}: ${p.message}`)
    .join('; ');
  const more = problems.length > 5 ? `; and ${problems.length - 5} more` : '';
  return new GpuccError(
    'ERR_GPUCC_CDI_SPEC_INVALID',
    `refusing to write an invalid CDI spec ${label}: ${shown}${more}`,
    {
      hint: 'check P_GPU_ALIAS / NVSWITCH_ALIAS; otherwise this is a kata-manager bug: report it with these problems. The previous spec was kept',
      details: { spec: label, problems },
    },
  );
}
