import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, errnoOf, GpuccError } from '../src/errors/index.js';

const docs = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
const documented = [...docs.matchAll(/^## (ERR_GPUCC_[A-Z0-9_]+)$/gm)].map((m) => m[1]);

describe('error catalogue', () => {
  it('documents every code in docs/errors.md, and nothing that does not exist', () => {
    expect([...documented].sort()).toEqual(Object.keys(ERROR_CODES).sort());
  });

  it('gives every documented code a description and a line on what to do', () => {
    for (const code of documented) {
      const section = docs.split(`## ${code}\n`)[1]!.split('\n## ')[0]!.trim();
      expect(section.split('\n').length, code).toBeGreaterThanOrEqual(2);
    }
  });

  it('carries code, hint, cause and details into JSON and the one-line description', () => {
    const cause = Object.assign(new Error('busy'), { code: 'EBUSY' });
    const error = new GpuccError('ERR_GPUCC_SYSFS_WRITE', 'write failed', {
      hint: 'free it',
      cause,
      details: { errno: 'EBUSY' },
    });
    expect(error.toJSON()).toEqual({
      code: 'ERR_GPUCC_SYSFS_WRITE',
      message: 'write failed',
      hint: 'free it',
      cause: 'busy',
      details: { errno: 'EBUSY' },
    });
    expect(error.describe()).toBe('ERR_GPUCC_SYSFS_WRITE: write failed\n  hint: free it');
    expect(errnoOf(error)).toBe('EBUSY');
    expect(errnoOf(cause)).toBe('EBUSY');
    expect(errnoOf(new Error('x'))).toBeUndefined();
  });
});
