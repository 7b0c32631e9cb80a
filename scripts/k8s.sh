#!/bin/sh
# Real Kubernetes components for the `real` test tier, built from source through the Go module
# proxy (test/k8s/go.mod pins them): kube-apiserver and etcd of one Kubernetes release, and our
# harness around the kubelet's device manager.
#
#   sh scripts/k8s.sh build    build once into the cache (reused while the pins are unchanged)
#   sh scripts/k8s.sh path     print the bin dir if it is built; exit 1 (and say why) if not
#   sh scripts/k8s.sh key      print the cache key of the current pins
#
# Cache: ${GPUCC_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gpucc/k8s}/<key>/bin, the key naming
# the release and a hash of go.mod, go.sum, the harness sources and this script. Rebuild: remove that dir.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
mod="$root/test/k8s"
cache="${GPUCC_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gpucc/k8s}"
# The release comes from go.mod, so that the key, the version stamp and the pins cannot disagree.
k8s_version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$mod/go.mod")
etcd_version=$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2; exit }' "$mod/go.mod")
# Go's own installer puts it in /usr/local/go/bin, which a non-login shell may not have on its PATH.
command -v go >/dev/null 2>&1 || PATH="$PATH:/usr/local/go/bin"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}" GOFLAGS="${GOFLAGS:-} -buildvcs=false -trimpath"

key() {
  # What decides the binaries: the pins, our sources, and this script's build flags.
  digest=$( (cd "$mod" && find go.mod go.sum cmd -type f | LC_ALL=C sort | xargs cat; cat "$root/scripts/k8s.sh") | sha256sum | cut -c1-12)
  echo "kubernetes-$k8s_version-etcd-$etcd_version-$digest"
}

bin_dir() { echo "$cache/$(key)/bin"; }

built() {
  dir=$(bin_dir)
  [ -x "$dir/kube-apiserver" ] && [ -x "$dir/etcd" ] && [ -x "$dir/devicemanager-harness" ]
}

build() {
  if built; then
    echo "k8s: already built, reused: $(bin_dir)" >&2
    bin_dir
    return 0
  fi
  command -v go >/dev/null 2>&1 || {
    echo "k8s: Go is not installed; the real tier needs Go $(awk '$1 == "go" { print $2 }' "$mod/go.mod") or later (https://go.dev/dl)" >&2
    exit 1
  }
  dest="$cache/$(key)"
  tmp="$dest.tmp.$$"
  trap 'rm -rf "$tmp"' EXIT INT TERM
  mkdir -p "$tmp/bin"
  start=$(date +%s)
  major=$(echo "$k8s_version" | sed 's/^v\([0-9]*\)\..*/\1/')
  minor=$(echo "$k8s_version" | sed 's/^v[0-9]*\.\([0-9]*\)\..*/\1/')
  # The version a release build stamps, so that the API server reports the release it is.
  stamp=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    stamp="$stamp -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  cd "$mod"
  echo "k8s: building with $(go version) into $dest (the first build takes about 20 minutes on 2 cores; later ones reuse it)" >&2
  echo "k8s: [1/3] devicemanager-harness (kubelet device manager of $k8s_version)" >&2
  # -checklinkname=0: the harness reaches the manager's path-taking constructor (see its main.go).
  go build -ldflags "-s -w -checklinkname=0" -o "$tmp/bin/devicemanager-harness" ./cmd/devicemanager-harness
  echo "k8s: [2/3] etcd $etcd_version" >&2
  go build -ldflags "-s -w" -o "$tmp/bin/etcd" ./cmd/etcd
  echo "k8s: [3/3] kube-apiserver $k8s_version" >&2
  go build -ldflags "-s -w$stamp" -o "$tmp/bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  end=$(date +%s)
  printf 'kubernetes %s\netcd %s\n%s\nbuilt %s in %ss\n' "$k8s_version" "$etcd_version" "$(go version)" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$((end - start))" >"$tmp/BUILD"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  trap - EXIT INT TERM
  echo "k8s: built in $((end - start))s; $(du -sh "$dest" | cut -f1) in $dest" >&2
  bin_dir
}

case "${1:-}" in
  build) build ;;
  path)
    if built; then bin_dir; else
      echo "k8s: not built for the current pins ($(key)); run: sh scripts/k8s.sh build" >&2
      exit 1
    fi
    ;;
  key) key ;;
  *)
    echo "usage: sh scripts/k8s.sh build|path|key" >&2
    exit 2
    ;;
esac
