import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CDI_SCHEMA, CDI_SCHEMA_DEFS } from '../src/schema/cdi-schema.js';
import { checkSpecText, schemaProblems, specProblems } from '../src/validate.js';

const FIXTURES = path.join(import.meta.dirname, 'fixtures/cdi-schema');
const REPOSITORY = path.resolve(import.meta.dirname, '../../..');
const GENERATED = 'packages/kata-manager/src/schema/cdi-validator.generated.ts';
const json = (rel: string) => JSON.parse(readFileSync(path.join(FIXTURES, rel), 'utf8'));
const text = (rel: string) => readFileSync(path.join(FIXTURES, rel), 'utf8');

describe('the official CDI schema', () => {
  it('is carried verbatim: the TypeScript data equals the upstream schema.json and defs.json', () => {
    expect(CDI_SCHEMA).toEqual(json('schema.json'));
    expect(CDI_SCHEMA_DEFS).toEqual(json('defs.json'));
    // The upstream typo stays: fixing it would reject valid env lists (docs/facts/cdi.md#the-schema-and-its-typo).
    expect(JSON.stringify(CDI_SCHEMA_DEFS)).toContain('"ref":"#definitions/Env"');
  });

  it('is compiled ahead of time: the committed validator is what scripts/gen-cdi-validator.mjs makes now', () => {
    // A schema change or an Ajv upgrade without `node scripts/gen-cdi-validator.mjs` fails here.
    const fresh = execFileSync(process.execPath, [path.join(REPOSITORY, 'scripts/gen-cdi-validator.mjs'), '--print'], {
      encoding: 'utf8',
    });
    expect(fresh).toBe(readFileSync(path.join(REPOSITORY, GENERATED), 'utf8'));
  });

  it.each(['minimal.json', 'spec-example.json'])('accepts upstream good/%s, schema and rules alike', (file) => {
    const spec = json(`testdata/good/${file}`);
    expect(schemaProblems(spec)).toEqual([]);
    expect(specProblems(spec)).toEqual([]);
    expect(() => checkSpecText(text(`testdata/good/${file}`), 'json', file)).not.toThrow();
  });

  it('rejects upstream bad/explicit-empty.json: cdiVersion is required', () => {
    expect(schemaProblems(json('testdata/bad/explicit-empty.json'))).toContainEqual({
      path: '',
      message: "must have required property 'cdiVersion'",
    });
  });

  it('rejects upstream bad/empty.json before the schema: an empty file is not JSON', () => {
    expect(() => checkSpecText(text('testdata/bad/empty.json'), 'json', 'empty.json')).toThrow(
      expect.objectContaining({ code: 'ERR_GPUCC_CDI_SPEC_INVALID', message: expect.stringMatching(/not valid JSON/) }),
    );
  });

  it('rejects a numeric device name and a device without containerEdits', () => {
    const base = { cdiVersion: '0.5.0', kind: 'nvidia.com/pgpu' };
    expect(schemaProblems({ ...base, devices: [{ name: 8, containerEdits: { env: ['A=1'] } }] })).toContainEqual({
      path: '/devices/0/name',
      message: 'must be string',
    });
    expect(schemaProblems({ ...base, devices: [{ name: '8' }] })).toContainEqual({
      path: '/devices/0',
      message: "must have required property 'containerEdits'",
    });
  });

  it('reads YAML as the Go loader does: an unquoted numeric name is a number and is refused', () => {
    const yaml =
      'cdiVersion: "0.5.0"\nkind: nvidia.com/pgpu\ndevices:\n  - name: 60\n    containerEdits:\n      deviceNodes:\n        - path: /dev/vfio/60\n';
    expect(() => checkSpecText(yaml, 'yaml', 'x.yaml')).toThrow(/\/devices\/0\/name: must be string/);
    expect(() => checkSpecText(yaml.replace('name: 60', 'name: "60"'), 'yaml', 'x.yaml')).not.toThrow();
    // Duplicate keys are refused rather than silently resolved.
    expect(() => checkSpecText(`${yaml}kind: nvidia.com/x\n`, 'yaml', 'x.yaml')).toThrow(/not valid YAML/);
  });
});
