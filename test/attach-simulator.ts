// vitest's setup file: every test process has the simulator attached, as `pnpm exec <operand>` has
// (packages/sim/bin/attach.mjs), so an operand's main() can open a simulated node in-process.
import { attachSimulatorHere } from '@gpucc/sim';

attachSimulatorHere();
