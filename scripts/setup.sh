#!/bin/sh
# Sourced by the other scripts: makes pnpm 12.4.2 available (installing it into .tools/ when the
# machine has only Node.js and npm), installs the workspace from the lockfile and builds it.
set -eu
cd "$(dirname "$0")/.."
PNPM_VERSION=12.4.2
if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version 2>/dev/null)" != "$PNPM_VERSION" ]; then
  if [ ! -x .tools/node_modules/.bin/pnpm ]; then
    echo "setup: installing pnpm $PNPM_VERSION into .tools/" >&2
    npm install --prefix .tools --no-save --no-audit --no-fund --loglevel=error "pnpm@$PNPM_VERSION" >&2
  fi
  PATH="$PWD/.tools/node_modules/.bin:$PATH"
  export PATH
fi
# node-pty (gpucc's terminal tests) compiles a native addon with node-gyp, which would download Node's
# headers: point it at the running Node's own, where they are installed, so nothing is fetched.
NODE_PREFIX=$(dirname "$(dirname "$(node -p process.execPath)")")
if [ -z "${npm_config_nodedir:-}" ] && [ -f "$NODE_PREFIX/include/node/node_api.h" ]; then
  npm_config_nodedir=$NODE_PREFIX
  export npm_config_nodedir
fi
pnpm install --frozen-lockfile --reporter=silent
pnpm run --silent build
