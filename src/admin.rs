//! Admin HTTP servers: `/healthz` (a real `Version` call over the socket path) and
//! `/readyz` (our own socket is in place and accepting) on the health listener;
//! `/metrics` alone on the metrics listener (no profiling or debug handlers anywhere).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::grpc::SocketId;
use crate::grpc::proto::v1alpha1::VersionRequest;
use crate::grpc::proto::v1alpha1::csi_driver_provider_client::CsiDriverProviderClient;
use crate::metrics::Metrics;

/// Readiness latch: false until the gRPC socket is bound and serving.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the provider ready.
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Marks the provider not ready (draining).
    pub fn set_not_ready(&self) {
        self.0.store(false, Ordering::Release);
    }

    /// Current state.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
struct AdminState {
    socket: PathBuf,
    socket_id: SocketId,
    timeout: Duration,
    ready: Readiness,
}

/// Time allowed for the `/readyz` connect to our socket.
const READY_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

async fn healthz(State(s): State<AdminState>) -> (StatusCode, String) {
    let check = async {
        let channel = crate::grpc::client::connect(s.socket.clone())
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", s.socket.display()))?;
        CsiDriverProviderClient::new(channel)
            .version(VersionRequest {
                version: "v1alpha1".into(),
            })
            .await
            .map_err(|e| format!("Version call failed: {}", e.message()))?;
        Ok::<_, String>(())
    };
    match tokio::time::timeout(s.timeout, check).await {
        Ok(Ok(())) => (StatusCode::OK, "ok\n".into()),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Version call did not answer within {:?}\n", s.timeout),
        ),
    }
}

/// Ready when not draining, the socket path names the socket this process
/// created (not missing, not a successor's after a rolling update) and that
/// socket accepts a connection. A connect, not a gRPC call, keeps it cheap;
/// `/healthz` exercises the whole server.
async fn readyz(State(s): State<AdminState>) -> (StatusCode, String) {
    let not_ready = |why: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
    };
    if !s.ready.is_ready() {
        return not_ready("shutting down".into());
    }
    let path = s.socket.display();
    match SocketId::of(&s.socket) {
        Ok(id) if id == s.socket_id => {}
        Ok(_) => return not_ready(format!("{path} is another instance's socket")),
        Err(e) => return not_ready(format!("{path}: {e}")),
    }
    match tokio::time::timeout(
        READY_CONNECT_TIMEOUT,
        tokio::net::UnixStream::connect(&s.socket),
    )
    .await
    {
        Ok(Ok(_)) => (StatusCode::OK, "ready\n".into()),
        Ok(Err(e)) => not_ready(format!("cannot connect to {path}: {e}")),
        Err(_) => not_ready(format!(
            "{path} did not accept within {} s",
            READY_CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// Binds the health listener. A bind failure stops start-up (the reference
/// ignores it and silently loses its probe).
///
/// # Errors
/// When the address cannot be bound.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `/healthz` and `/readyz` on `listener` until `shutdown`; `socket_id`
/// is the identity of the socket this process bound at `socket`.
///
/// # Errors
/// When the server fails.
pub async fn serve_health(
    listener: TcpListener,
    socket: PathBuf,
    socket_id: SocketId,
    timeout: Duration,
    ready: Readiness,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AdminState {
            socket,
            socket_id,
            timeout,
            ready,
        });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// OpenMetrics content type.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn metrics_handler(
    State(m): State<Arc<Metrics>>,
) -> (
    StatusCode,
    [(axum::http::header::HeaderName, &'static str); 1],
    String,
) {
    match m.encode() {
        Ok(body) => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, OPENMETRICS)],
            body,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(axum::http::header::CONTENT_TYPE, "text/plain")],
            "cannot encode metrics\n".into(),
        ),
    }
}

/// Serves `/metrics` only on `listener` until `shutdown`.
///
/// # Errors
/// When the server fails.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
