#!/bin/sh
# The one test command (README, CI): set up, lint and format check, type-check/build, every test with coverage.
set -eu
. "$(dirname "$0")/setup.sh"
pnpm exec biome check .
pnpm exec tsc -p tsconfig.tests.json
pnpm exec vitest run --coverage
