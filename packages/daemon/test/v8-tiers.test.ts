import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { DAEMON_V8_FLAGS } from '../src/process/index.js';

// Whether V8 optimized a hot function, in a fresh Node process that sets `flags` at run time as a
// daemon does (capV8Tiers), before the function ever runs. V8's status bit 16 = optimized.
function optimizedAfterHotLoop(flags: string | undefined): boolean {
  const script = `
    ${flags === undefined ? '' : `require('node:v8').setFlagsFromString(${JSON.stringify(flags)});`}
    function sum(xs) { let s = 0; for (const x of xs) s += x; return s; }
    const xs = Array.from({ length: 100 }, (_, i) => i);
    let total = 0;
    for (let i = 0; i < 200000; i++) total += sum(xs);
    process.stdout.write(String((%GetOptimizationStatus(sum) & 16) !== 0));`;
  return execFileSync(process.execPath, ['--allow-natives-syntax', '-e', script], { encoding: 'utf8' }) === 'true';
}

describe('the daemons’ V8 tiers (capV8Tiers)', () => {
  it('set at run time, keep a hot function out of the optimizing compiler, which optimizes it otherwise', () => {
    expect(optimizedAfterHotLoop(undefined)).toBe(true);
    expect(optimizedAfterHotLoop(DAEMON_V8_FLAGS)).toBe(false);
  });
});
