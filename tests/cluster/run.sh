#!/usr/bin/env bash
# The real secrets-store-csi-driver and a real kube-apiserver against our
# release binary: for each driver version, a fresh etcd + kube-apiserver on
# loopback, the driver's CRDs, the Azure stand-in (examples/cluster_standin.rs)
# behind its recording HTTPS proxy, our provider on the driver's provider
# directory, the driver binary, and the kubelet stand-in running the scenarios
# (seed with Secret sync, rotation, TLS Secret, workload identity, pod
# identity, failures). See the "Real driver and API server" section of
# README.md. Needs root (the driver mounts tmpfs), Go, openssl and curl; fails
# loudly when any component cannot be built or started.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN_DIR=${CLUSTER_BIN_DIR:-"$ROOT/target/cluster/bin"}
NODE=cluster-node
# Driver versions to run, newest first; DRIVERS="v1.6.1" runs one.
DRIVERS=${DRIVERS:-"v1.6.1 v1.5.6"}
START=$SECONDS

die() {
  echo "cluster: error: $*" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root: the driver mounts a tmpfs for every volume"
for tool in go openssl curl mount umount; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
done

WORK=$(mktemp -d /tmp/rust-azure-cluster.XXXXXX)
PIDS=()

# Stops every process this script started (newest first) and unmounts what the
# driver left mounted under the work directory.
stop_all() {
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${PIDS[$i]}" 2>/dev/null || true
  done
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    for _ in $(seq 1 50); do
      kill -0 "${PIDS[$i]}" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "${PIDS[$i]}" 2>/dev/null || true
    wait "${PIDS[$i]}" 2>/dev/null || true
  done
  PIDS=()
  local m
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk -v w="$WORK" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r)
}

cleanup() {
  local rc=$?
  stop_all
  if [ "$rc" -ne 0 ] || [ -n "${KEEP_WORK:-}" ]; then
    echo "cluster: logs kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: runs CMD in the background with its output in $DIR/NAME.log.
start() {
  local name=$1
  shift
  "$@" >"$DIR/$name.log" 2>&1 &
  PIDS+=($!)
}

# wait_for WHAT SECONDS PID CMD...: polls CMD every 0.2s; fails with the
# process's log when it exits or the time runs out.
wait_for() {
  local what=$1 secs=$2 pid=$3 log=$4
  shift 4
  local i
  for i in $(seq 1 $((secs * 5))); do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 60 "$log" >&2 || true
      die "$what: the process exited"
    fi
    sleep 0.2
  done
  tail -n 60 "$log" >&2 || true
  die "$what: not ready within ${secs}s"
}

echo "== cluster: Go components (etcd, kube-apiserver, drivers, kubelet stand-in)"
CLUSTER_BIN_DIR="$BIN_DIR" bash "$ROOT/tests/cluster/build.sh"
echo "== cluster: cargo build --release --locked (provider and the Azure stand-in)"
cargo build --release --locked --bin rust-azure-provider --example cluster_standin || die "cargo build failed"
PROVIDER_BIN="$ROOT/target/release/rust-azure-provider"
STANDIN_BIN="$ROOT/target/release/examples/cluster_standin"
SCENARIOS_BIN="$BIN_DIR/cluster-scenarios"
ETCD_BIN=$(ls "$BIN_DIR"/etcd-v*)
APISERVER_BIN=$(ls "$BIN_DIR"/kube-apiserver-v*)
BUILD_SECS=$((SECONDS - START))
echo "cluster: components ready after ${BUILD_SECS}s"

RESULTS=()

run_driver() {
  local version=$1
  local driver_bin="$BIN_DIR/secrets-store-csi-driver-$version"
  local module_dir requires_republish
  case $version in
    v1.6.*) module_dir=driver-v1.6 requires_republish=true ;;
    v1.5.*) module_dir=driver-v1.5 requires_republish=false ;;
    *) die "unknown driver version $version" ;;
  esac
  [ -x "$driver_bin" ] || die "$driver_bin was not built"
  DIR="$WORK/$version"
  mkdir -p "$DIR/providers" "$DIR/extra-providers" "$DIR/csi" "$DIR/kubelet" "$DIR/etcd"
  local t0=$SECONDS
  echo "== cluster: driver $version"

  local ports
  mapfile -t ports < <("$SCENARIOS_BIN" free-ports 4)
  local etcd_port=${ports[0]} etcd_peer=${ports[1]} api_port=${ports[2]} driver_metrics=${ports[3]}

  start etcd "$ETCD_BIN" --data-dir "$DIR/etcd" --listen-client-url "http://127.0.0.1:$etcd_port" --listen-peer-url "http://127.0.0.1:$etcd_peer"
  wait_for "etcd" 60 "${PIDS[-1]}" "$DIR/etcd.log" grep -q '^ETCD_READY=' "$DIR/etcd.log"

  # The API server: a token for a system:masters user, service-account
  # signing keys (TokenRequest for workload identity), no controllers.
  openssl genrsa -out "$DIR/sa.key" 2048 2>/dev/null
  openssl rsa -in "$DIR/sa.key" -pubout -out "$DIR/sa.pub" 2>/dev/null
  local token
  token=$(openssl rand -hex 24)
  echo "$token,cluster-admin,cluster-admin,system:masters" >"$DIR/tokens.csv"
  local issuer="https://kubernetes.default.svc.cluster.local"
  start kube-apiserver "$APISERVER_BIN" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --cert-dir "$DIR/apiserver-certs" \
    --token-auth-file "$DIR/tokens.csv" --authorization-mode AlwaysAllow \
    --service-account-issuer "$issuer" \
    --service-account-key-file "$DIR/sa.pub" --service-account-signing-key-file "$DIR/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 --endpoint-reconciler-type none \
    --enable-priority-and-fairness=false --profiling=false
  wait_for "kube-apiserver" 120 "${PIDS[-1]}" "$DIR/kube-apiserver.log" \
    curl -sfk -H "Authorization: Bearer $token" "https://127.0.0.1:$api_port/readyz"
  cat >"$DIR/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:$api_port
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: $token
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
EOF
  echo "cluster: etcd and kube-apiserver $("$APISERVER_BIN" --version 2>/dev/null | awk '{print $2}') ready on 127.0.0.1:$api_port after $((SECONDS - t0))s"

  # What the driver's Helm chart and the control plane would have installed
  # before the driver starts: its CRDs (from its own module), namespaces,
  # ServiceAccounts, the Node, the CSIDriver object.
  local crd_dir
  # go mod download (not go list) also works when the binary is cached under
  # target/ but the module cache was emptied.
  crd_dir="$(cd "$ROOT/tests/cluster/go/$module_dir" && go mod download -json sigs.k8s.io/secrets-store-csi-driver | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')/config/crd/bases"
  [ -d "$crd_dir" ] || die "the driver's CRDs are not at $crd_dir"
  "$SCENARIOS_BIN" --phase setup --kubeconfig "$DIR/kubeconfig" --node "$NODE" --repo "$ROOT" \
    --crd-dir "$crd_dir" --requires-republish="$requires_republish" || die "cluster setup failed"

  # The Azure stand-in and our provider on the driver's provider directory.
  start standin "$STANDIN_BIN" --sa-issuer "$issuer" \
    --federated-subject wi:workload-sa --federated-subject failures:workload-sa \
    --nmi-pod default/inject-secrets-from-akv --nmi-pod podid/podid-app
  wait_for "the Azure stand-in" 60 "${PIDS[-1]}" "$DIR/standin.log" grep -q '^READY$' "$DIR/standin.log"
  local proxy ca admin_addr admin_host
  proxy=$(sed -n 's/^HTTPS_PROXY=//p' "$DIR/standin.log")
  ca=$(sed -n 's/^CA_BUNDLE=//p' "$DIR/standin.log")
  admin_addr=$(sed -n 's/^ADMIN_ADDR=//p' "$DIR/standin.log")
  admin_host=$(sed -n 's/^ADMIN_HOST=//p' "$DIR/standin.log")
  start provider env -i RUST_AZURE_PROVIDER_OUTBOUND_PROXY="$proxy" RUST_AZURE_PROVIDER_CA_BUNDLE="$ca" \
    "$PROVIDER_BIN" --provider-dir "$DIR/providers" --health-addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0
  wait_for "rust-azure-provider" 30 "${PIDS[-1]}" "$DIR/provider.log" test -S "$DIR/providers/rust-azure.sock"

  # The driver, as its Helm chart runs it with syncSecret and rotation on.
  # v1.5's rotation reconciler reads KUBECONFIG, not --kubeconfig.
  start driver env KUBECONFIG="$DIR/kubeconfig" "$driver_bin" \
    --kubeconfig "$DIR/kubeconfig" --endpoint "unix://$DIR/csi/csi.sock" --nodeid "$NODE" \
    --provider-volume "$DIR/providers" --additional-provider-volume-paths "$DIR/extra-providers" \
    --metrics-addr "127.0.0.1:$driver_metrics" \
    --enable-secret-rotation --rotation-poll-interval 5s -v 2
  wait_for "secrets-store-csi-driver $version" 60 "${PIDS[-1]}" "$DIR/driver.log" test -S "$DIR/csi/csi.sock"
  echo "cluster: Azure stand-in, rust-azure-provider and secrets-store-csi-driver $version running after $((SECONDS - t0))s"

  local rc=0
  "$SCENARIOS_BIN" --phase scenarios --kubeconfig "$DIR/kubeconfig" --driver-socket "$DIR/csi/csi.sock" \
    --driver-version "$version" --node "$NODE" --root-dir "$DIR/kubelet" --repo "$ROOT" \
    --admin-addr "$admin_addr" --admin-host "$admin_host" \
    --requires-republish="$requires_republish" --republish-interval 2s 2>&1 | tee "$DIR/scenarios.log" || rc=$?
  mapfile -t -O "${#RESULTS[@]}" RESULTS < <(grep -E '^(PASS|FAIL) ' "$DIR/scenarios.log" || true)
  if [ "$rc" -ne 0 ]; then
    for log in driver provider standin; do
      echo "---- $version: last lines of $log.log" >&2
      tail -n 40 "$DIR/$log.log" >&2 || true
    done
    RESULTS+=("FAIL driver $version (exit $rc)")
  fi
  stop_all
  # The stand-in lists what its recording proxy and its NMI saw when it stops:
  # Entra ID and Key Vault went through the provider's outbound proxy; NMI
  # (loopback) was called directly, never through the proxy.
  local want
  for want in "CONNECT myk8skv.vault.azure.net:443" "CONNECT login.microsoftonline.com:443"; do
    if grep -q "^proxy saw: $want" "$DIR/standin.log"; then
      echo "cluster: the stand-in's proxy saw $want"
    else
      echo "cluster: the stand-in's proxy never saw $want" >&2
      RESULTS+=("FAIL driver $version: no $want through the proxy")
    fi
  done
  if grep -q "^nmi saw: GET localhost:2579/host/token/" "$DIR/standin.log"; then
    echo "cluster: NMI on 127.0.0.1:2579 was called directly"
  else
    echo "cluster: NMI on 127.0.0.1:2579 was never called" >&2
    RESULTS+=("FAIL driver $version: no direct NMI call")
  fi
  if grep -q "^proxy saw: .*2579" "$DIR/standin.log"; then
    echo "cluster: the proxy saw an NMI (loopback) request" >&2
    RESULTS+=("FAIL driver $version: NMI went through the proxy")
  fi
  echo "cluster: driver $version done in $((SECONDS - t0))s"
}

for v in $DRIVERS; do
  run_driver "$v"
done

echo "== cluster: summary (components ${BUILD_SECS}s, total $((SECONDS - START))s)"
failed=0
for r in "${RESULTS[@]}"; do
  echo "  $r"
  case $r in FAIL*) failed=1 ;; esac
done
[ "${#RESULTS[@]}" -gt 0 ] || die "no scenario ran"
[ "$failed" -eq 0 ] || die "some scenarios failed"
echo "cluster: all scenarios passed"
