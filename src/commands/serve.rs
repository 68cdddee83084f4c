//! `serve`: run the provider on its unix socket until SIGTERM/SIGINT.

use std::process::ExitCode;

use crate::config::ServeArgs;
use crate::grpc::{self, ProviderService};
use crate::mount::{MountOptions, Provider};

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
            tracing::error!(error = %format!("{e:#}"), "provider stopped");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: crate::config::Settings) -> anyhow::Result<()> {
    let shutdown = crate::shutdown::on_signal()?;
    let args = &settings.args;
    let provider = Provider::new(MountOptions {
        default_cloud: args.cloud_name.clone(),
        construct_pem_chain: args.construct_pem_chain,
        write_cert_and_key_in_separate_files: args.write_cert_and_key_in_separate_files,
    });
    let service = ProviderService::new(provider, args.max_response_bytes);
    let socket = grpc::bind(&settings.socket_path)?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        socket = %settings.socket_path.display(),
        "rust-azure-provider serving"
    );
    grpc::serve(socket, service, shutdown, args.drain_timeout).await?;
    Ok(())
}
