//! A client for a provider socket, used by the health check and the `mount`
//! command. It sends `:authority: localhost`, which every HTTP/2 server accepts.

use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};

/// Opens a gRPC channel to the provider socket at `path`.
///
/// # Errors
/// When the socket cannot be connected.
pub async fn connect(path: PathBuf) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move { UnixStream::connect(path).await.map(TokioIo::new) }
        }))
        .await
}
