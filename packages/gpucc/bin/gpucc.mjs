#!/usr/bin/env node
// Run from the repository only (`pnpm exec gpucc`): the simulator is attached, so --host-root may be a
// simulated node. Then the bundle made by `pnpm build` (scripts/bundle.mjs): one file, so it starts fast.
import '@gpucc/sim/attach';
import { main } from '../dist/bundle/gpucc.mjs';

process.exitCode = await main(process.argv);
