#!/usr/bin/env bash
# Builds (or reuses) the Go components of tests/cluster into
# target/cluster/bin/<name>-<version>: etcd, kube-apiserver, the
# secrets-store-csi-driver at each tested version, and our kubelet stand-in
# with the scenarios (cluster-scenarios).
# A binary already present is reused, so warm runs skip every Go build.
# Usage: tests/cluster/build.sh [component...]   (default: all)
# CLUSTER_BIN_DIR overrides the output directory.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
GO_DIR="$ROOT/tests/cluster/go"
BIN_DIR=${CLUSTER_BIN_DIR:-"$ROOT/target/cluster/bin"}
mkdir -p "$BIN_DIR"

ETCD_VERSION=v3.6.16
KUBE_VERSION=v1.34.3
DRIVER_V16=v1.6.1
DRIVER_V15=v1.5.6

command -v go >/dev/null 2>&1 || { echo "cluster: error: go is not installed (Go >= 1.26 is needed to build the driver v1.6.x)" >&2; exit 1; }

# Each build writes to a temporary name and renames on success, so an
# interrupted build never leaves a binary that a warm run would reuse.
build() {
  local name=$1 dir=$2 pkg=$3 ldflags=$4
  local out="$BIN_DIR/$name"
  if [ -x "$out" ]; then
    echo "cluster: reusing $out"
    return 0
  fi
  echo "cluster: building $name (go build in tests/cluster/go/$dir)"
  local start=$SECONDS
  (cd "$GO_DIR/$dir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$out.partial" "$pkg") \
    || { echo "cluster: error: building $name failed" >&2; return 1; }
  mv "$out.partial" "$out"
  echo "cluster: built $name in $((SECONDS - start))s ($(du -h "$out" | cut -f1))"
}

build_one() {
  case $1 in
    etcd) build "etcd-$ETCD_VERSION" etcd . "" ;;
    kube-apiserver)
      build "kube-apiserver-$KUBE_VERSION" apiserver k8s.io/kubernetes/cmd/kube-apiserver \
        "-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34 -X k8s.io/component-base/version.gitTreeState=clean"
      ;;
    driver-v1.6)
      build "secrets-store-csi-driver-$DRIVER_V16" driver-v1.6 sigs.k8s.io/secrets-store-csi-driver/cmd/secrets-store-csi-driver \
        "-X sigs.k8s.io/secrets-store-csi-driver/pkg/version.BuildVersion=$DRIVER_V16"
      ;;
    driver-v1.5)
      build "secrets-store-csi-driver-$DRIVER_V15" driver-v1.5 sigs.k8s.io/secrets-store-csi-driver/cmd/secrets-store-csi-driver \
        "-X sigs.k8s.io/secrets-store-csi-driver/pkg/version.BuildVersion=$DRIVER_V15"
      ;;
    kubelet)
      # Our own code (the kubelet stand-in and the scenarios): always rebuilt,
      # never a stale binary; Go's build cache makes this a second when warm.
      rm -f "$BIN_DIR/cluster-scenarios"
      build cluster-scenarios kubelet ./cmd/cluster-scenarios ""
      ;;
    *) echo "cluster: error: unknown component $1" >&2; return 1 ;;
  esac
}

if [ $# -eq 0 ]; then
  set -- etcd driver-v1.6 kube-apiserver driver-v1.5 kubelet
fi
for c in "$@"; do
  build_one "$c"
done
