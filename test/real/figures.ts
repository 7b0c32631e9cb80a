import { appendFileSync } from 'node:fs';

/**
 * A measured figure of the real tier (not an assertion: speed is never tested). Printed, and
 * appended as a JSON line to GPUCC_REAL_FIGURES when set (scripts/test-real.sh collects them).
 */
export function recordFigure(name: string, value: number): void {
  const rounded = Math.round(value * 10) / 10;
  console.log(`figure: ${name}: ${rounded}`);
  const file = process.env.GPUCC_REAL_FIGURES;
  if (file) appendFileSync(file, `${JSON.stringify({ name, value: rounded })}\n`);
}
