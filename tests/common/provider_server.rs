//! The production gRPC server started in-process on a temp-dir socket, and a
//! tonic client channel over that socket.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rust_azure_provider::grpc::{self, ProviderService, ServeError};
use tokio::net::UnixStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint, Uri};

/// The service as `serve` builds it (default flags) with the driver's 4 MiB response limit.
pub(crate) fn provider_service() -> ProviderService {
    use clap::Parser;
    let cli = rust_azure_provider::config::Cli::try_parse_from(["rust-azure-provider"])
        .expect("default flags parse");
    let settings = cli.serve.validate().expect("default flags are valid");
    let metrics = rust_azure_provider::metrics::Metrics::new();
    let provider = rust_azure_provider::app::build_provider(&settings, metrics.clone())
        .expect("provider builds");
    ProviderService::new(provider, metrics, 4 << 20)
}

/// A running in-process server.
pub(crate) struct TestServer {
    /// Keeps the directory alive.
    pub(crate) dir: tempfile::TempDir,
    /// The socket path.
    pub(crate) path: PathBuf,
    /// Cancels the server.
    pub(crate) token: CancellationToken,
    /// The `serve` future.
    pub(crate) handle: JoinHandle<Result<(), ServeError>>,
}

impl TestServer {
    /// Binds `rust-azure.sock` in a fresh temp dir and serves it.
    pub(crate) fn start() -> Self {
        Self::start_with_drain(Duration::from_secs(5))
    }

    /// Like [`TestServer::start`] with a given drain timeout.
    pub(crate) fn start_with_drain(drain: Duration) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rust-azure.sock");
        let (token, handle) = serve_at(&path, drain);
        Self {
            dir,
            path,
            token,
            handle,
        }
    }

    /// Cancels the server and waits (at most 5 s) for `serve` to return.
    pub(crate) async fn stop(self) -> PathBuf {
        self.token.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.handle)
            .await
            .expect("serve did not return within 5 s of shutdown")
            .expect("serve task panicked")
            .expect("serve failed");
        self.path
    }
}

/// Binds `path` and spawns `serve`.
pub(crate) fn serve_at(
    path: &Path,
    drain: Duration,
) -> (CancellationToken, JoinHandle<Result<(), ServeError>>) {
    serve_service_at(path, provider_service(), drain)
}

/// Binds `path` and spawns `serve` with `service`.
pub(crate) fn serve_service_at(
    path: &Path,
    service: ProviderService,
    drain: Duration,
) -> (CancellationToken, JoinHandle<Result<(), ServeError>>) {
    let socket = grpc::bind(path).expect("bind");
    let token = CancellationToken::new();
    let handle = tokio::spawn(grpc::serve(socket, service, token.clone(), drain));
    (token, handle)
}

/// A tonic channel to the socket at `path` (authority `localhost`).
pub(crate) async fn channel(path: &Path) -> Channel {
    let path = path.to_owned();
    Endpoint::try_from("http://localhost")
        .expect("endpoint")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .expect("connect to the provider socket")
}
