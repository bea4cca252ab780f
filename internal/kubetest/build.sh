#!/usr/bin/env bash
# Builds the control plane internal/kubetest starts (kube-apiserver,
# kube-controller-manager, kube-scheduler and etcd) from the Go modules pinned
# in internal/kubetest/tools/go.mod, into a cache directory:
#
#   ${MLBOT_KUBE_BIN:-$HOME/.cache/mlbot/kube/v1.37.2}
#
# It does nothing when the four binaries are already there. A cold build takes
# 6 minutes or more on two cores and about 3 GB of memory while linking; a
# rebuild from a warm Go build cache takes seconds. The binaries are written
# to a temporary directory beside the cache and moved in only when all four
# are built, so an interrupted build leaves nothing half-made behind.
set -euo pipefail

version=v1.37.2
bin="${MLBOT_KUBE_BIN:-${HOME}/.cache/mlbot/kube/${version}}"
tools="$(cd "$(dirname "$0")/tools" && pwd)"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler)

have_all() {
  local b
  for b in "${binaries[@]}"; do [ -x "$bin/$b" ] || return 1; done
}

if have_all; then
  echo "kubetest: control plane ${version} already built in ${bin}"
  exit 0
fi

command -v go >/dev/null || { echo "kubetest: go not found on PATH" >&2; exit 1; }
mkdir -p "$(dirname "$bin")"
tmp="$(mktemp -d "${bin}.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# The version the binaries report (/version, their logs); the code's own
# compatibility version is compiled in and does not depend on it.
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${version}"
ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"
ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"

echo "kubetest: building the control plane ${version} into ${bin} (cold: several minutes)"
start=$SECONDS
# One invocation, so the packages the three commands share compile once.
(cd "$tools" && nice -n 10 go build -ldflags "$ldflags" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler)
(cd "$tools" && nice -n 10 go build -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)

for b in "${binaries[@]}"; do
  [ -x "$tmp/$b" ] || { echo "kubetest: $b was not built" >&2; exit 1; }
done
mkdir -p "$bin"
for b in "${binaries[@]}"; do mv -f "$tmp/$b" "$bin/$b"; done
echo "kubetest: built ${binaries[*]} in $((SECONDS - start))s"
