//! Two provider binaries on one socket path, as during a DaemonSet rolling update with
//! `maxSurge` or a restart overlap: the newer instance takes the path over without a gap, the
//! older one never unlinks the newer one's socket, and `/readyz` says whether this process's own
//! socket is in place and accepting. Real processes, real sockets, SIGTERM for shutdown.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code fails the test on setup errors"
)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use common::fake_azure::FakeAzure;
use common::provider_process::{ProviderProcess, http_get};
use rust_azure_provider::grpc::proto::v1alpha1::VersionRequest;
use rust_azure_provider::grpc::proto::v1alpha1::csi_driver_provider_client::CsiDriverProviderClient;

const BIN: &str = env!("CARGO_BIN_EXE_rust-azure-provider");
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

async fn start(fake: &FakeAzure, dir: &Path) -> ProviderProcess {
    ProviderProcess::start_in(
        Path::new(BIN),
        Some(dir),
        &fake.proxy_url(),
        fake.pki.ca_path(),
        &["--log-filter", "rust_azure_provider=debug"],
    )
    .await
    .expect("provider starts")
}

/// A `Version` call over a new connection to whatever the path names now.
async fn path_answers(path: &Path) -> bool {
    let Ok(channel) = rust_azure_provider::grpc::client::connect(path.to_owned()).await else {
        return false;
    };
    CsiDriverProviderClient::new(channel)
        .version(VersionRequest {
            version: "v1alpha1".into(),
        })
        .await
        .is_ok()
}

async fn status(p: &ProviderProcess, endpoint: &str) -> (u16, String) {
    http_get(p.health_addr, endpoint).await.expect(endpoint)
}

fn inode(path: &Path) -> u64 {
    std::fs::symlink_metadata(path)
        .expect("socket exists")
        .ino()
}

#[tokio::test]
async fn rolling_update_overlap_never_loses_the_socket() {
    let fake = FakeAzure::start().await;
    let dir = tempfile::tempdir().unwrap();
    let old = start(&fake, dir.path()).await;
    let socket = old.socket.clone();
    assert_eq!(status(&old, "/readyz").await.0, 200);
    assert_eq!(status(&old, "/healthz").await.0, 200);
    let old_inode = inode(&socket);
    // A connection the old instance accepted before the update (a driver mid-conversation).
    let mut held = old.client().await.unwrap();
    held.version(VersionRequest::default()).await.unwrap();

    let new = start(&fake, dir.path()).await;
    let new_inode = inode(&socket);
    assert_ne!(
        old_inode, new_inode,
        "the new instance renamed its socket over the path"
    );
    assert!(path_answers(&socket).await);
    assert_eq!(status(&new, "/readyz").await, (200, "ready\n".into()));
    assert_eq!(status(&new, "/healthz").await.0, 200);
    // The old instance is no longer the one on the path: not ready, so the rollout proceeds.
    let (code, body) = status(&old, "/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("another instance's socket"), "{body}");
    // ...but it keeps serving what it already accepted.
    held.version(VersionRequest::default())
        .await
        .expect("the old instance still serves its accepted connection");
    let new_log = new.logs();
    assert!(
        new_log.contains("another instance is serving on the socket"),
        "{new_log}"
    );
    assert!(!new_log.contains("stale"), "{new_log}");

    drop(held);
    let (ok, old_log) = old.terminate(STOP_TIMEOUT).await.unwrap();
    assert!(ok, "old instance exit status\n{old_log}");
    assert!(
        old_log.contains("socket now belongs to another instance; leaving it in place"),
        "{old_log}"
    );
    assert!(!old_log.contains("socket removed"), "{old_log}");
    assert_eq!(
        inode(&socket),
        new_inode,
        "the new instance's socket survives"
    );
    assert!(path_answers(&socket).await);
    assert_eq!(status(&new, "/readyz").await, (200, "ready\n".into()));
    assert_eq!(status(&new, "/healthz").await.0, 200);

    // The last instance to stop cleans up its own socket.
    let (ok, new_log) = new.terminate(STOP_TIMEOUT).await.unwrap();
    assert!(ok, "{new_log}");
    assert!(new_log.contains("socket removed"), "{new_log}");
    assert!(!socket.exists());
}

#[tokio::test]
async fn readyz_fails_when_the_socket_is_gone_or_replaced() {
    let fake = FakeAzure::start().await;
    let dir = tempfile::tempdir().unwrap();
    let p = start(&fake, dir.path()).await;
    assert_eq!(status(&p, "/readyz").await.0, 200);

    std::fs::remove_file(&p.socket).unwrap();
    let (code, body) = status(&p, "/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("No such file"), "{body}");
    assert_eq!(status(&p, "/healthz").await.0, 503);

    // A socket file at the path that nobody serves (not ours, nothing answers).
    drop(std::os::unix::net::UnixListener::bind(&p.socket).unwrap());
    let (code, body) = status(&p, "/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(status(&p, "/healthz").await.0, 503);
}

#[tokio::test]
async fn stale_socket_file_is_replaced_at_start() {
    let fake = FakeAzure::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rust-azure.sock");
    // Left behind by a crashed instance: the file exists, nothing listens.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(std::os::unix::net::UnixStream::connect(&path).is_err());
    let p = start(&fake, dir.path()).await;
    assert!(path_answers(&path).await);
    assert_eq!(status(&p, "/readyz").await.0, 200);
    let log = p.logs();
    assert!(
        log.contains("replacing stale socket (nothing answers on it)"),
        "{log}"
    );
    let (ok, log) = p.terminate(STOP_TIMEOUT).await.unwrap();
    assert!(ok, "{log}");
    assert!(!path.exists());
}
