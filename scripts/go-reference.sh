#!/bin/sh
# The Go reference device plugin that `pnpm bench` measures ours against
# (packages/testbed/bench/go-reference), built and cached by scripts/go-cached.sh.
#
#   sh scripts/go-reference.sh build|path|key
#
# Cache: ${GPUCC_GO_REFERENCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gpucc/go-reference}/<key>/.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
GPUCC_GO_CACHE_DIR="${GPUCC_GO_REFERENCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gpucc/go-reference}" \
  exec sh "$root/scripts/go-cached.sh" packages/testbed/bench/go-reference go-reference-device-plugin "${1:-}"
