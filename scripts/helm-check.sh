#!/usr/bin/env bash
# Lints and renders the Helm chart with real Helm (built from the Go module
# proxy, since no Helm binary can be downloaded here), then checks the rendered
# DaemonSets against the binary's flags, socket directory and ports.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.17.3
TOOLS="$PWD/target/tools/bin"
HELM="$TOOLS/helm"
command -v go >/dev/null 2>&1 || { echo "error: go is needed to build helm" >&2; exit 1; }
if ! "$HELM" version 2>/dev/null | grep -q "${HELM_VERSION%.*}"; then
  echo "building helm $HELM_VERSION from the Go module proxy"
  mkdir -p "$TOOLS"
  GOBIN="$TOOLS" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi

CHART=deploy/helm/rust-azure-provider
OUT=target/helm
rm -rf "$OUT" && mkdir -p "$OUT"
"$HELM" lint --strict "$CHART"
"$HELM" template rust-azure-provider "$CHART" -n kube-system >"$OUT/default.yaml"
"$HELM" template rust-azure-provider "$CHART" -n kube-system \
  --set hostNetwork=true --set priorityClassName=system-node-critical \
  --set caBundle=/etc/ssl/extra/ca.pem --set customUserAgent=ops-team \
  --set 'podAnnotations.example\.com/team=platform' >"$OUT/hostnetwork.yaml"
RUST_AZURE_HELM_RENDERED="$OUT" cargo test --locked --test manifests -- \
  --ignored --exact helm_rendered_chart_agrees_with_the_binary
