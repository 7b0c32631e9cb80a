#!/usr/bin/env node
// The bundle made by `pnpm build` (scripts/bundle.mjs): one file, so the binary starts fast.
import { main } from '../dist/bundle/kata-manager.mjs';

process.exitCode = await main(process.argv);
