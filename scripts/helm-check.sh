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
WORK=target/helm-work
rm -rf "$OUT" "$WORK" && mkdir -p "$OUT" "$WORK"
render() { "$HELM" template rust-azure-provider "$CHART" -n kube-system "$@"; }

"$HELM" lint --strict "$CHART"
"$HELM" lint --strict "$CHART" -f "$CHART/values-pod-identity.yaml"
render >"$OUT/default.yaml"
render --set hostNetwork=true --set priorityClassName=system-node-critical \
  --set caBundle=/etc/ssl/extra/ca.pem --set customUserAgent=ops-team \
  --set 'podAnnotations.example\.com/team=platform' >"$OUT/hostnetwork.yaml"
render -f "$CHART/values-pod-identity.yaml" >"$OUT/pod-identity.yaml"

# Every optional value set, with strings that YAML would misread unquoted
# (checked exactly by tests/manifests.rs).
cat >"$WORK/full-values.yaml" <<'YAML'
image: {repository: registry.example/rust-azure-provider, tag: "1.2.3"}
imagePullSecrets: [{name: regcred}]
logLevel: debug
metricsPort: 9101
drainTimeout: 45s
customUserAgent: 'ops: team #1 "quoted"'
outboundProxy: http://proxy.internal:3128
noProxy: 10.0.0.0/8,.svc,.cluster.local
sniName: "yes: no"
extraArgs: ["--ca-bundle=/etc/ssl/extra: ca.pem"]
extraEnv: [{name: EXTRA, value: "1"}]
metrics:
  service: {enabled: true}
  serviceMonitor: {enabled: true}
  podMonitor: {enabled: true}
YAML
render -f "$WORK/full-values.yaml" >"$OUT/full.yaml"
"$HELM" lint --strict "$CHART" -f "$WORK/full-values.yaml"

# Invalid values fail at install time, naming the value.
must_fail() {
  local expect="$1"; shift
  if render "$@" >"$WORK/rejected.yaml" 2>"$WORK/rejected.err"; then
    echo "error: helm accepted $* (expected a failure mentioning $expect)" >&2; exit 1
  fi
  if ! grep -q -- "$expect" "$WORK/rejected.err"; then
    echo "error: helm rejected $* without mentioning $expect:" >&2; cat "$WORK/rejected.err" >&2; exit 1
  fi
  echo "rejected as expected: $*"
}
must_fail logFormat --set logFormat=JSON
must_fail logLevel --set logLevel=verbose
must_fail mountTimeout --set mountTimeout=soon
must_fail metricsPort --set metricsPort=70000
must_fail terminationGracePeriodSeconds --set terminationGracePeriodSeconds=30
must_fail metrics.service.enabled --set metrics.serviceMonitor.enabled=true

RUST_AZURE_HELM_RENDERED="$OUT" cargo test --locked --test manifests -- \
  --ignored --exact helm_rendered_chart_agrees_with_the_binary
