#!/bin/sh
# A small Go program of this repository (never shipped: the Go reference device plugin of the
# benchmark, the Prometheus text-format reader of the tests), built through the Go module proxy with
# the pins of its go.mod and go.sum (those of test/k8s, so the module cache of the real tier already
# has them), once, into a cache reused while its sources are unchanged.
#
#   sh scripts/go-cached.sh <module dir> <name> build   build once into the cache; print the binary's path
#   sh scripts/go-cached.sh <module dir> <name> path    print the binary's path if it is built; exit 1 (and say why) if not
#   sh scripts/go-cached.sh <module dir> <name> key     print the cache key of the current sources
#
# <module dir> is relative to the repository. Cache: ${GPUCC_GO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gpucc/<name>}/<key>/,
# the key a hash of the module's files and this script. Rebuild: remove that dir.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -eq 3 ] || {
  echo "usage: sh scripts/go-cached.sh <module dir> <name> build|path|key" >&2
  exit 2
}
mod="$root/$1"
name=$2
cache="${GPUCC_GO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gpucc/$name}"
# Go's own installer puts it in /usr/local/go/bin, which a non-login shell may not have on its PATH.
command -v go >/dev/null 2>&1 || PATH="$PATH:/usr/local/go/bin"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

key() {
  # What decides the binary: the pins, the sources, and this script's build flags (not a stray build output).
  digest=$( (cd "$mod" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) | LC_ALL=C sort | xargs cat
    cat "$root/scripts/go-cached.sh") | sha256sum | cut -c1-12)
  echo "$name-$digest"
}

binary() { echo "$cache/$(key)/$name"; }

build() {
  if [ -x "$(binary)" ]; then
    echo "$name: already built, reused: $(binary)" >&2
    binary
    return 0
  fi
  command -v go >/dev/null 2>&1 || {
    echo "$name: Go is not installed; it needs Go $(awk '$1 == "go" { print $2 }' "$mod/go.mod") or later (https://go.dev/dl)" >&2
    exit 1
  }
  dest="$cache/$(key)"
  tmp="$dest.tmp.$$"
  trap 'rm -rf "$tmp"' EXIT INT TERM
  mkdir -p "$tmp"
  cd "$mod"
  echo "$name: building with $(go version) into $dest" >&2
  # Stripped, as a Go program is shipped; -mod=readonly: go.sum must already hold every module.
  go build -mod=readonly -trimpath -buildvcs=false -ldflags "-s -w" -o "$tmp/$name" .
  rm -rf "$dest"
  mv "$tmp" "$dest"
  trap - EXIT INT TERM
  binary
}

case "$3" in
  build) build ;;
  path)
    if [ -x "$(binary)" ]; then binary; else
      echo "$name: not built for the current sources ($(key)); run: sh scripts/go-cached.sh $1 $name build" >&2
      exit 1
    fi
    ;;
  key) key ;;
  *)
    echo "usage: sh scripts/go-cached.sh <module dir> <name> build|path|key" >&2
    exit 2
    ;;
esac
