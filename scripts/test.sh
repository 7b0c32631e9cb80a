#!/bin/sh
# The one test command (README, CI): set up, lint and format check, type-check/build, every test with coverage,
# then the `real` tier (test/real) when its components are built or GPUCC_REAL_K8S=1 asks for them.
set -eu
. "$(dirname "$0")/setup.sh"
pnpm exec biome check .
pnpm exec tsc -p tsconfig.tests.json
pnpm exec vitest run --coverage --exclude 'test/real/**'
sh scripts/test-real.sh --if-built
