//! `serve`: run the provider on its unix socket until SIGTERM/SIGINT.

use std::process::ExitCode;

use crate::config::ServeArgs;
use crate::grpc::{self, ProviderService};

/// Timeout of the `Version` call behind `/healthz` (the reference's default).
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Entry point of `serve`.
pub fn main(args: ServeArgs) -> ExitCode {
    if let Err(e) = crate::telemetry::init(args.log_format, &args.log_filter) {
        eprintln!("rust-azure-provider: {e}");
        return ExitCode::from(2);
    }
    let settings = match args.validate() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %crate::error::chain_text(e.as_ref()), "provider stopped");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: crate::config::Settings) -> anyhow::Result<()> {
    let shutdown = crate::shutdown::on_signal()?;
    let args = &settings.args;
    let metrics = crate::metrics::Metrics::new();
    let provider = crate::app::build_provider(&settings, metrics.clone())?;
    let service = ProviderService::new(provider, metrics.clone(), args.max_response_bytes);
    let health = crate::admin::bind(args.health_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind --health-addr {}: {e}", args.health_addr))?;
    let metrics_listener = crate::admin::bind(args.metrics_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind --metrics-addr {}: {e}", args.metrics_addr))?;
    let health_addr = health.local_addr();
    let metrics_addr = metrics_listener.local_addr();
    let socket = grpc::bind(&settings.socket_path)?;
    let socket_id = socket.id();
    let metrics_server = tokio::spawn(crate::admin::serve_metrics(
        metrics_listener,
        metrics,
        shutdown.clone(),
    ));
    let ready = crate::admin::Readiness::default();
    ready.set_ready();
    let admin = tokio::spawn(crate::admin::serve_health(
        health,
        settings.socket_path.clone(),
        socket_id,
        HEALTH_TIMEOUT,
        ready.clone(),
        shutdown.clone(),
    ));
    // The bound addresses (not the configured ones) so that port 0 is usable:
    // tests and local runs read the actual ports from this line.
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        socket = %settings.socket_path.display(),
        health_addr = %display_addr(health_addr),
        metrics_addr = %display_addr(metrics_addr),
        "rust-azure-provider serving"
    );
    let served = grpc::serve(socket, service, shutdown.clone(), args.drain_timeout).await;
    ready.set_not_ready();
    shutdown.cancel();
    if let Ok(Err(e)) = admin.await {
        tracing::warn!(error = %e, "health server failed");
    }
    if let Ok(Err(e)) = metrics_server.await {
        tracing::warn!(error = %e, "metrics server failed");
    }
    served?;
    Ok(())
}

fn display_addr(addr: std::io::Result<std::net::SocketAddr>) -> String {
    match addr {
        Ok(a) => a.to_string(),
        Err(e) => format!("unknown ({e})"),
    }
}
