//! Generates the gRPC code from `proto/` with a pure-Rust protobuf parser, so no
//! `protoc` binary is needed on any machine, and records the source commit for
//! the `rust_azure_provider_build_info` metric.

use std::path::Path;
use std::process::Command;

/// Set by builds without a git checkout (for example a container build context).
const COMMIT_ENV: &str = "RUST_AZURE_PROVIDER_BUILD_COMMIT";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["v1alpha1/service.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    println!("cargo:rustc-env=RUST_AZURE_PROVIDER_COMMIT={}", commit());
    Ok(())
}

/// The short commit hash, or `unknown` when neither the environment nor git
/// can tell (a source tarball, no git installed): never a build failure.
fn commit() -> String {
    println!("cargo:rerun-if-env-changed={COMMIT_ENV}");
    if let Ok(value) = std::env::var(COMMIT_ENV) {
        let value = value.trim();
        if is_commit_like(value) {
            return value.to_owned();
        }
    }
    // Rebuild when HEAD moves: HEAD itself (branch switch, detached commit), the
    // branch's ref file and packed-refs. Only existing files are watched, since
    // cargo reruns the script on every build for a missing one.
    for rel in ["HEAD", "packed-refs"] {
        watch_git_path(rel);
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch_git_path(&branch);
    }
    git(&["rev-parse", "--short=12", "HEAD"])
        .filter(|c| is_commit_like(c))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn watch_git_path(rel: &str) {
    if let Some(path) = git(&["rev-parse", "--git-path", rel])
        && Path::new(&path).exists()
    {
        println!("cargo:rerun-if-changed={path}");
    }
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.trim().to_owned())
}

/// Hex only, so nothing odd ends up in a metric label.
fn is_commit_like(s: &str) -> bool {
    (4..=40).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}
