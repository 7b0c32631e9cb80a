#!/bin/sh
# Runs the demo on a simulated node (see README). Arguments go to scripts/demo.mjs (e.g. --keep).
set -eu
. "$(dirname "$0")/setup.sh"
exec node scripts/demo.mjs "$@"
