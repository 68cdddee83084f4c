//! Quickstart: the seed walkthrough on a fresh machine with no Azure and no cluster.
//! `bash scripts/quickstart.sh` builds the release provider and this example, then runs it.
//! It ends with `SECRET=<value>` (the pod's environment) and exits non-zero on any failure.
//! `--keep-running` leaves the Azure stand-in and the provider running and prints the socket and
//! the proxy/CA settings, for driving the provider with other clients.

#[path = "../../tests/common/mod.rs"]
mod common;
mod scenario;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Run the seed scenario against the shipped provider binary.
#[derive(Debug, Parser)]
#[command(name = "quickstart")]
struct Args {
    /// The shipped `rust-azure-provider` binary.
    #[arg(long, default_value = "target/release/rust-azure-provider")]
    provider_bin: PathBuf,
    /// SecretProviderClass YAML.
    #[arg(long, default_value = "deploy/examples/seed-secretproviderclass.yaml")]
    spc: PathBuf,
    /// Pod YAML whose `SECRET` variable comes from the synced Secret.
    #[arg(long, default_value = "deploy/examples/seed-pod.yaml")]
    pod: PathBuf,
    /// Keep the Azure stand-in and the provider running after the demo (until Ctrl-C/SIGTERM).
    #[arg(long)]
    keep_running: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("quickstart: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let opts = scenario::Options {
        provider_bin: args.provider_bin,
        spc: args.spc,
        pod: args.pod,
    };
    let mut stdout = std::io::stdout();
    let demo = scenario::run(&opts, &mut stdout).await?;
    if !args.keep_running {
        return Ok(());
    }
    let proxy = demo.fake.proxy_url();
    println!("== Still running (Ctrl-C or SIGTERM stops everything)");
    println!("SOCKET={}", demo.provider.socket.display());
    println!("HTTPS_PROXY={proxy}");
    println!("HTTP_PROXY={proxy}");
    println!("CA_BUNDLE={}", demo.fake.pki.ca_path().display());
    println!("HEALTH_ADDR={}", demo.provider.health_addr);
    println!("METRICS_ADDR={}", demo.provider.metrics_addr);
    println!("PROVIDER_PID={}", demo.provider.pid());
    println!("OUT_DIR={}", demo.out_dir.path().display());
    println!(
        "NMI answers for pod {}/{}; vault {} holds {}, {} (certificate-backed, PKCS#12) and {} (JSON)",
        scenario::POD_NAMESPACE,
        scenario::POD_NAME,
        scenario::VAULT,
        scenario::SECRET_NAME,
        scenario::CERT_NAME,
        scenario::JSON_SECRET_NAME
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    println!("stopping");
    drop(demo);
    Ok(())
}
