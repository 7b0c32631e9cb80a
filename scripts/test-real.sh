#!/bin/sh
# The `real` test tier alone (test/real): the operands against real Kubernetes components built from
# source by scripts/k8s.sh (kube-apiserver, etcd, the kubelet's device manager).
#
#   sh scripts/test-real.sh            build the components if needed (with progress), then run the tier
#   sh scripts/test-real.sh --if-built (scripts/test.sh) run it only when built or GPUCC_REAL_K8S=1
#                                      asks for the build; otherwise say in one line why it is skipped
set -eu
cd "$(dirname "$0")/.."
if [ "${1:-}" = --if-built ] && [ "${GPUCC_REAL_K8S:-}" != 1 ]; then
  if ! sh scripts/k8s.sh path >/dev/null 2>&1; then
    echo "real tier skipped: kube-apiserver, etcd and the kubelet device manager are not built (needs Go; about 20 min once, then cached); run it with: npm run test:real (or GPUCC_REAL_K8S=1 npm test)"
    exit 0
  fi
else
  [ "${1:-}" = --if-built ] || . scripts/setup.sh
  sh scripts/k8s.sh build >/dev/null
fi
# GPUCC_REAL_K8S=1: inside the tier, a component that is missing fails instead of skipping.
GPUCC_REAL_K8S=1 pnpm exec vitest run --no-file-parallelism test/real/
