//! The shipped provider binary as a child process: a temporary provider directory, outbound
//! traffic through the fake proxy (`HTTPS_PROXY`/`HTTP_PROXY` on the child only, everything else
//! of the parent environment removed), the fake CA as `--ca-bundle`, admin listeners on port 0
//! (their bound addresses are read from the start-up log line), logs captured to files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use rust_azure_provider::grpc::proto::v1alpha1::csi_driver_provider_client::CsiDriverProviderClient;
use tonic::transport::Channel;

/// Log line the provider prints once its socket serves.
const SERVING: &str = "rust-azure-provider serving";

/// A running provider binary; killed on drop.
pub struct ProviderProcess {
    child: Child,
    /// Holds the socket and the log files.
    pub dir: tempfile::TempDir,
    /// `<dir>/rust-azure.sock`.
    pub socket: PathBuf,
    /// `/healthz`, `/readyz` listener.
    pub health_addr: SocketAddr,
    /// `/metrics` listener.
    pub metrics_addr: SocketAddr,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl ProviderProcess {
    /// Starts `bin` with outbound traffic through `proxy_url`, trusting `ca_bundle`, plus
    /// `extra_args`; waits (at most 20 s) until the socket serves.
    ///
    /// # Errors
    /// When the process cannot start, exits, or does not serve in time (the log is included).
    pub async fn start(
        bin: &Path,
        proxy_url: &str,
        ca_bundle: &Path,
        extra_args: &[&str],
    ) -> anyhow::Result<Self> {
        Self::start_in(bin, None, proxy_url, ca_bundle, extra_args).await
    }

    /// [`ProviderProcess::start`] with `--provider-dir` set to `provider_dir` when given (two
    /// instances sharing one socket path, as during a rolling update); the logs stay in the
    /// process's own temporary directory. The start-up line waited for is printed after the socket
    /// was renamed into place, so on return the path names this process's socket.
    ///
    /// # Errors
    /// As [`ProviderProcess::start`].
    pub async fn start_in(
        bin: &Path,
        provider_dir: Option<&Path>,
        proxy_url: &str,
        ca_bundle: &Path,
        extra_args: &[&str],
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("rust-azure-provider-")
            .tempdir()
            .context("cannot create the provider directory")?;
        let provider_dir = provider_dir.unwrap_or(dir.path()).to_owned();
        let socket = provider_dir.join("rust-azure.sock");
        let stdout_path = dir.path().join("provider.stdout");
        let stderr_path = dir.path().join("provider.stderr");
        let stdout = std::fs::File::create(&stdout_path)?;
        let stderr = std::fs::File::create(&stderr_path)?;
        let mut cmd = Command::new(bin);
        cmd.env_clear()
            .env("HTTPS_PROXY", proxy_url)
            .env("HTTP_PROXY", proxy_url)
            .arg("--provider-dir")
            .arg(&provider_dir)
            .args(["--health-addr", "127.0.0.1:0"])
            .args(["--metrics-addr", "127.0.0.1:0"])
            .arg("--ca-bundle")
            .arg(ca_bundle)
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut me = Self {
            child,
            dir,
            socket,
            health_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            metrics_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            stdout_path,
            stderr_path,
        };
        let started = Instant::now();
        loop {
            if let Some(status) = me.child.try_wait()? {
                bail!(
                    "the provider exited during start-up ({status}):\n{}",
                    me.logs()
                );
            }
            let log = me.logs();
            if let Some(line) = log.lines().find(|l| l.contains(SERVING))
                && me.socket.exists()
            {
                me.health_addr = field_addr(line, "health_addr")?;
                me.metrics_addr = field_addr(line, "metrics_addr")?;
                return Ok(me);
            }
            if started.elapsed() > Duration::from_secs(20) {
                bail!("the provider did not serve within 20 s:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A gRPC client over the socket (`rust_azure_provider::grpc::client::connect`).
    ///
    /// # Errors
    /// When the socket cannot be connected.
    pub async fn client(&self) -> anyhow::Result<CsiDriverProviderClient<Channel>> {
        let channel = rust_azure_provider::grpc::client::connect(self.socket.clone())
            .await
            .with_context(|| format!("cannot connect to {}", self.socket.display()))?;
        Ok(CsiDriverProviderClient::new(channel))
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        let out = std::fs::read_to_string(&self.stdout_path).unwrap_or_default();
        let err = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        format!("{out}{err}")
    }

    /// Sends SIGTERM (graceful shutdown) and waits at most `timeout` for the exit; returns
    /// whether the exit status was success, and the complete output.
    ///
    /// # Errors
    /// When the signal cannot be sent or the process does not exit in time (it is killed).
    pub async fn terminate(mut self, timeout: Duration) -> anyhow::Result<(bool, String)> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("cannot run kill")?;
        if !status.success() {
            bail!("kill -TERM {} failed: {status}", self.child.id());
        }
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok((status.success(), self.logs()));
            }
            if started.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "the provider did not exit within {timeout:?} of SIGTERM:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the process and returns its complete output.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.logs()
    }
}

impl Drop for ProviderProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `name=<addr>` from a text log line, or field `name` from a JSON one.
fn field_addr(line: &str, name: &str) -> anyhow::Result<SocketAddr> {
    if line.trim_start().starts_with('{') {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
        return v[name]
            .as_str()
            .ok_or_else(|| anyhow!("no {name} in the start-up line: {line}"))?
            .parse()
            .with_context(|| format!("{name} is not an address: {line}"));
    }
    let key = format!("{name}=");
    let value = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&key))
        .ok_or_else(|| anyhow!("no {name} in the start-up line: {line}"))?;
    value
        .trim_matches('"')
        .parse()
        .with_context(|| format!("{name} is not an address: {line}"))
}

/// `GET http://<addr><path>` over a fresh connection; returns status and body.
///
/// # Errors
/// When the connection or the response fails.
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw))
        .await
        .context("admin endpoint did not answer within 10 s")??;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("malformed HTTP response: {text}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("malformed status line: {head}"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}
