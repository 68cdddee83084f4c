//! Socket lifecycle and transport conformance over a real unix socket against
//! the production server (protocol.md §4, §9, §10).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::h2raw::{self, Authority, CallOutcome, RawConn};
use common::provider_server::{TestServer, channel, serve_at};
use prost::Message;
use rust_azure_provider::grpc::proto::v1alpha1 as pb;
use rust_azure_provider::grpc::proto::v1alpha1::csi_driver_provider_client::CsiDriverProviderClient;
use rust_azure_provider::grpc::{self, ServeError};
use tokio::net::UnixStream;

const VERSION: &str = "/v1alpha1.CSIDriverProvider/Version";
const MOUNT: &str = "/v1alpha1.CSIDriverProvider/Mount";
const RAW_PATH: &[u8] = b"/var/run/secrets-store-csi-providers/rust-azure.sock";
const ETC_PATH: &[u8] = b"/etc/kubernetes/secrets-store-csi-providers/rust-azure.sock";
const ENCODED_PATH: &[u8] = b"%2Fvar%2Frun%2Fsecrets-store-csi-providers%2Frust-azure.sock";
const WINDOWS_PATH: &[u8] = b"C:\\k\\secrets-store-csi-providers\\rust-azure.sock";

/// Every `:authority` form of protocol.md §9.1/§9.5.
fn authorities() -> Vec<(&'static str, Authority<'static>)> {
    vec![
        ("localhost", Authority::Literal(b"localhost")),
        ("absent", Authority::Absent),
        ("empty", Authority::Literal(b"")),
        ("raw socket path", Authority::Literal(RAW_PATH)),
        ("/etc socket path", Authority::Literal(ETC_PATH)),
        ("percent-encoded path", Authority::Literal(ENCODED_PATH)),
        ("windows path", Authority::Literal(WINDOWS_PATH)),
        (
            "string with spaces",
            Authority::Literal(b"an arbitrary string with spaces"),
        ),
    ]
}

fn version_request() -> Vec<u8> {
    pb::VersionRequest {
        version: "v1alpha1".to_owned(),
    }
    .encode_to_vec()
}

fn mount_request(secrets: &str) -> Vec<u8> {
    pb::MountRequest {
        attributes: r#"{"csi.storage.k8s.io/pod.name":"app","csi.storage.k8s.io/pod.namespace":"default","keyvaultName":"kv","tenantId":"t","objects":"array:\n  - |\n    objectName: s\n    objectType: secret\n"}"#.to_owned(),
        secrets: secrets.to_owned(),
        target_path: "/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/v/mount".to_owned(),
        permission: "420".to_owned(),
        current_object_version: vec![],
    }
    .encode_to_vec()
}

fn assert_version_ok(out: &CallOutcome, what: &str) {
    assert_eq!(out.reset, None, "{what}: stream reset: {out:?}");
    assert_eq!(out.grpc_status(), Some(0), "{what}: {out:?}");
    let resp = pb::VersionResponse::decode(out.message().expect("response message"))
        .expect("VersionResponse");
    assert_eq!(resp.version, "v1alpha1", "{what}");
    assert_eq!(resp.runtime_name, "rust-azure-provider", "{what}");
    assert_eq!(resp.runtime_version, env!("CARGO_PKG_VERSION"), "{what}");
}

fn assert_status_not_reset(out: &CallOutcome, what: &str) {
    assert_eq!(out.reset, None, "{what}: stream reset: {out:?}");
    assert!(
        out.grpc_status().is_some(),
        "{what}: no grpc-status: {out:?}"
    );
}

async fn raw_version(path: &Path, authority: Authority<'_>) -> CallOutcome {
    let mut conn = RawConn::connect(path).await.expect("connect");
    conn.call(VERSION, authority, &version_request())
        .await
        .expect("Version call")
}

async fn tonic_version(path: &Path) -> pb::VersionResponse {
    let mut client = CsiDriverProviderClient::new(channel(path).await);
    client
        .version(pb::VersionRequest {
            version: "v1alpha1".to_owned(),
        })
        .await
        .expect("Version over tonic")
        .into_inner()
}

#[tokio::test]
async fn version_answers_any_authority() {
    let server = TestServer::start();
    for (what, authority) in authorities() {
        let out = raw_version(&server.path, authority).await;
        assert_version_ok(&out, what);
    }
    server.stop().await;
}

#[tokio::test]
async fn mount_answers_a_status_for_any_authority() {
    let server = TestServer::start();
    for (what, authority) in authorities() {
        let mut conn = RawConn::connect(&server.path).await.unwrap();
        let out = conn
            .call(MOUNT, authority, &mount_request("null"))
            .await
            .unwrap();
        assert_status_not_reset(&out, what);
    }
    server.stop().await;
}

#[tokio::test]
async fn mount_decodes_null_secrets_and_decimal_permission() {
    let server = TestServer::start();
    let mut conn = RawConn::connect(&server.path).await.unwrap();
    let out = conn
        .call(MOUNT, Authority::Literal(RAW_PATH), &mount_request("null"))
        .await
        .unwrap();
    assert_status_not_reset(&out, "secrets null");
    let unmarshal_error =
        |o: &CallOutcome| o.grpc_status() == Some(3) && o.grpc_message().contains("unmarshal");
    assert!(!unmarshal_error(&out), "{out:?}");
    // Control: the same check does catch a request that fails to decode.
    let bad = conn
        .call(
            MOUNT,
            Authority::Literal(RAW_PATH),
            &mount_request("not json"),
        )
        .await
        .unwrap();
    assert!(unmarshal_error(&bad), "{bad:?}");
    drop(conn);
    server.stop().await;
}

#[tokio::test]
async fn many_calls_on_one_connection_with_dynamic_table_references() {
    let server = TestServer::start();
    let mut conn = RawConn::connect(&server.path).await.unwrap();
    let version = version_request();
    // The bad authority enters the client's dynamic table (entry 62) ...
    let out = conn
        .call(VERSION, Authority::Indexed(RAW_PATH), &version)
        .await
        .unwrap();
    assert_version_ok(&out, "indexed raw path");
    // ... and later requests refer to it by index only.
    for i in 0..3 {
        let out = conn
            .call(VERSION, Authority::TableRef(62), &version)
            .await
            .unwrap();
        assert_version_ok(&out, &format!("table reference {i}"));
    }
    let out = conn
        .call(MOUNT, Authority::TableRef(62), &mount_request("null"))
        .await
        .unwrap();
    assert_status_not_reset(&out, "mount with table reference");
    // A second entry shifts the first to 63.
    let out = conn
        .call(VERSION, Authority::Indexed(WINDOWS_PATH), &version)
        .await
        .unwrap();
    assert_version_ok(&out, "indexed windows path");
    for (what, authority) in [
        ("windows ref", Authority::TableRef(62)),
        ("raw path ref", Authority::TableRef(63)),
        ("literal encoded", Authority::Literal(ENCODED_PATH)),
        ("absent", Authority::Absent),
        ("localhost", Authority::Literal(b"localhost")),
    ] {
        let out = conn.call(VERSION, authority, &version).await.unwrap();
        assert_version_ok(&out, what);
    }
    drop(conn);
    server.stop().await;
}

/// Writes `bytes` (ignoring errors: the server may already have closed).
async fn send_garbage(path: &Path, bytes: &[u8]) -> RawConn {
    let mut conn = RawConn::from_stream(UnixStream::connect(path).await.unwrap());
    let _ = conn.write_raw(bytes).await;
    conn
}

fn pseudo_random(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

fn preface_and(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut v = h2raw::PREFACE.to_vec();
    v.extend_from_slice(&h2raw::frame(h2raw::SETTINGS, 0, 0, &[]));
    for f in frames {
        v.extend_from_slice(f);
    }
    v
}

#[tokio::test]
async fn garbage_connections_do_not_hurt_the_server() {
    let server = TestServer::start();
    let path = server.path.clone();
    let mut survivor = RawConn::connect(&path).await.unwrap();
    assert_version_ok(
        &survivor
            .call(VERSION, Authority::Literal(RAW_PATH), &version_request())
            .await
            .unwrap(),
        "before garbage",
    );

    // Must be closed by the server.
    let must_close: Vec<(&str, Vec<u8>)> = vec![
        ("random bytes", pseudo_random(4096, 7)),
        (
            "invalid HPACK",
            preface_and(&[h2raw::frame(
                h2raw::HEADERS,
                h2raw::END_HEADERS,
                1,
                &[0xff, 0xff, 0xff, 0xff, 0x7f],
            )]),
        ),
        (
            "header block interrupted",
            preface_and(&[
                h2raw::frame(h2raw::HEADERS, 0, 1, &[0x83]),
                h2raw::frame(h2raw::DATA, 0, 1, b"x"),
            ]),
        ),
        (
            "DATA on stream 0",
            preface_and(&[h2raw::frame(h2raw::DATA, 0, 0, b"xyz")]),
        ),
        ("oversize header block", {
            let chunk = vec![0u8; 16 * 1024];
            let mut frames = vec![h2raw::frame(h2raw::HEADERS, 0, 1, &chunk)];
            for _ in 0..70 {
                frames.push(h2raw::frame(h2raw::CONTINUATION, 0, 1, &chunk));
            }
            preface_and(&frames)
        }),
    ];
    for (what, bytes) in must_close {
        let mut conn = send_garbage(&path, &bytes).await;
        assert!(
            conn.wait_closed(Duration::from_secs(5)).await,
            "{what}: the server must close the connection"
        );
        assert_version_ok(
            &raw_version(&path, Authority::Literal(RAW_PATH)).await,
            what,
        );
    }

    // The client goes away: random frames, truncated frames, a half-sent call.
    let mut random_frames = Vec::new();
    for i in 0..20u64 {
        let kind = [0x0, 0x1, 0x3, 0x8, 0x9, 0x42][(i % 6) as usize];
        random_frames.push(h2raw::frame(
            kind,
            (i * 37) as u8,
            (i % 3) as u32,
            &pseudo_random((i * 13 % 40) as usize, i + 1),
        ));
    }
    let truncated = {
        let mut v = preface_and(&[]);
        let block = h2raw::request_block(VERSION, Authority::Literal(RAW_PATH));
        let f = h2raw::frame(h2raw::HEADERS, h2raw::END_HEADERS, 1, &block);
        v.extend_from_slice(&f[..f.len() / 2]);
        v
    };
    let half_call = {
        let block = h2raw::request_block(VERSION, Authority::Literal(RAW_PATH));
        let mut v = preface_and(&[h2raw::frame(h2raw::HEADERS, h2raw::END_HEADERS, 1, &block)]);
        v.extend_from_slice(
            &h2raw::frame(h2raw::DATA, h2raw::END_STREAM, 1, &[0, 0, 0, 0, 9, 1])[..12],
        );
        v
    };
    for (what, bytes) in [
        ("random frames", preface_and(&random_frames)),
        ("truncated frame", truncated),
        ("half-sent call", half_call),
        ("preface only", h2raw::PREFACE[..10].to_vec()),
    ] {
        drop(send_garbage(&path, &bytes).await);
        assert_version_ok(
            &raw_version(&path, Authority::Literal(ENCODED_PATH)).await,
            what,
        );
    }

    // A connection opened before all this still works.
    assert_version_ok(
        &survivor
            .call(VERSION, Authority::Absent, &version_request())
            .await
            .unwrap(),
        "after garbage",
    );
    drop(survivor);
    server.stop().await;
}

#[tokio::test]
async fn socket_is_created_with_mode_0600_in_a_new_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/rust-azure.sock");
    let (token, handle) = serve_at(&path, Duration::from_secs(5));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    assert_eq!(tonic_version(&path).await.version, "v1alpha1");
    // No staging leftovers next to the socket.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["rust-azure.sock"]);
    token.cancel();
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rust-azure.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    assert!(UnixStream::connect(&path).await.is_err(), "stale socket");
    let (token, handle) = serve_at(&path, Duration::from_secs(5));
    assert_eq!(
        tonic_version(&path).await.runtime_name,
        "rust-azure-provider"
    );
    token.cancel();
    handle.await.unwrap().unwrap();
}

/// A long socket path (sun_path holds 107 bytes and a NUL) still binds: the staging path used
/// on the way in must not be much longer than the final one (it was 55 bytes longer).
#[tokio::test]
async fn a_socket_path_near_the_length_limit_binds() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_string_lossy().len() + "/rust-azure.sock".len() + 1;
    assert!(
        base < 70,
        "temporary directory too long for this test: {base}"
    );
    // A 90-byte socket path: the staged one is about 30 bytes longer and still fits.
    let sub = dir.path().join("d".repeat(90 - base));
    let path = sub.join("rust-azure.sock");
    assert_eq!(path.to_string_lossy().len(), 90);
    let (token, handle) = serve_at(&path, Duration::from_secs(5));
    assert_eq!(tonic_version(&path).await.version, "v1alpha1");
    token.cancel();
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn overlapping_instances_hand_the_socket_over() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rust-azure.sock");
    let ino = |p: &std::path::Path| std::fs::symlink_metadata(p).unwrap().ino();
    let (old_token, old_handle) = serve_at(&path, Duration::from_secs(5));
    let old_ino = ino(&path);
    let (new_token, new_handle) = serve_at(&path, Duration::from_secs(5));
    let new_ino = ino(&path);
    assert_ne!(old_ino, new_ino);
    old_token.cancel();
    old_handle.await.unwrap().unwrap();
    // The older instance left the newer one's socket in place.
    assert_eq!(ino(&path), new_ino);
    assert_eq!(tonic_version(&path).await.version, "v1alpha1");
    new_token.cancel();
    new_handle.await.unwrap().unwrap();
    assert!(!path.exists(), "the last instance removes its own socket");
}

#[tokio::test]
async fn regular_file_in_the_way_fails_bind_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rust-azure.sock");
    std::fs::write(&path, "keep me").unwrap();
    let err = grpc::bind(&path).unwrap_err();
    assert!(matches!(err, ServeError::NotASocket { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("not a socket"), "{msg}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
}

#[tokio::test]
async fn shutdown_returns_and_removes_the_socket() {
    let server = TestServer::start();
    // An idle client connection must not hold the shutdown up.
    let mut client = CsiDriverProviderClient::new(channel(&server.path).await);
    client.version(pb::VersionRequest::default()).await.unwrap();
    let started = Instant::now();
    let path = server.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(!path.exists(), "socket file left behind");
    assert!(client.version(pb::VersionRequest::default()).await.is_err());
}

#[tokio::test]
async fn unresponsive_client_is_cut_off_after_the_drain_timeout() {
    let server = TestServer::start_with_drain(Duration::from_secs(1));
    // This client stops reading after its call: it never acknowledges the
    // shutdown PING, so graceful close cannot complete.
    let mut conn = RawConn::connect(&server.path).await.unwrap();
    assert_version_ok(
        &conn
            .call(VERSION, Authority::Absent, &version_request())
            .await
            .unwrap(),
        "before shutdown",
    );
    let started = Instant::now();
    let path = server.stop().await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert!(!path.exists(), "socket file left behind");
    // The connection task itself ends when the runtime does (the binary exits
    // right after `serve` returns; see the binary test).
    drop(conn);
}

#[tokio::test]
async fn in_flight_call_completes_during_shutdown() {
    let server = TestServer::start();
    let mut conn = RawConn::connect(&server.path).await.unwrap();
    // The request headers are in; the body is not yet sent.
    let stream = conn
        .start_call(VERSION, Authority::Literal(RAW_PATH))
        .await
        .unwrap();
    // A PING round trip proves the server has the stream open (no guessing with a sleep).
    conn.sync().await.unwrap();
    let mut server = server;
    server.token.cancel();
    // The GOAWAY proves the shutdown has begun; serve must still wait for the open call.
    conn.wait_goaway().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut server.handle)
            .await
            .is_err(),
        "serve returned with a call in flight"
    );
    conn.send_message(stream, &version_request()).await.unwrap();
    let out = conn.finish_call(stream).await.unwrap();
    assert_version_ok(&out, "in-flight call");
    assert!(conn.goaway, "the server announces the shutdown with GOAWAY");
    let path = server.path.clone();
    tokio::time::timeout(Duration::from_secs(5), server.handle)
        .await
        .expect("serve returns after the last call")
        .unwrap()
        .unwrap();
    assert!(!path.exists());
}

#[tokio::test]
async fn health_check_answers_serving() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let server = TestServer::start();
    let mut client = HealthClient::new(channel(&server.path).await);
    for service in ["", "v1alpha1.CSIDriverProvider"] {
        let resp = client
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.status(), ServingStatus::Serving, "service {service:?}");
    }
    // The health service is reachable with a socket-path authority too.
    let mut conn = RawConn::connect(&server.path).await.unwrap();
    let out = conn
        .call(
            "/grpc.health.v1.Health/Check",
            Authority::Literal(ENCODED_PATH),
            &HealthCheckRequest::default().encode_to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(out.grpc_status(), Some(0), "{out:?}");
    drop((conn, client));
    server.stop().await;
}

/// Kills the child on drop so a failing test leaves no process behind.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_serves_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rust-azure.sock");
    let mut child = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_rust-azure-provider"))
            .arg("--provider-dir")
            .arg(dir.path())
            .arg("--drain-timeout=1s")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < deadline, "socket not created within 10 s");
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("provider exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        tonic_version(&path).await.runtime_version,
        env!("CARGO_PKG_VERSION")
    );
    assert_version_ok(
        &raw_version(&path, Authority::Literal(RAW_PATH)).await,
        "binary, raw socket path",
    );

    // A client that stops reading after its call never acknowledges the
    // shutdown PING: the drain timeout must bound the exit.
    let mut stuck = RawConn::connect(&path).await.unwrap();
    assert_version_ok(
        &stuck
            .call(
                VERSION,
                Authority::Literal(ENCODED_PATH),
                &version_request(),
            )
            .await
            .unwrap(),
        "binary, stuck client",
    );

    let kill = Command::new("kill")
        .arg("-TERM")
        .arg(child.0.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "provider still running 5 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(!path.exists(), "socket left behind");
    assert!(stuck.wait_closed(Duration::from_secs(1)).await);
}
