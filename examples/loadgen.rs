//! Load generator: drives the shipped provider binary over its unix socket against in-process
//! fake Entra ID and Key Vault (reached through the provider's normal outbound path: an HTTPS
//! forward proxy and a private CA), and reports latency, throughput, outbound requests per
//! Mount, provider CPU time and memory. See BENCHMARKS.md for the scenarios.
//!
//! ```text
//! cargo build --release
//! cargo run --release --example loadgen -- --provider target/release/rust-azure-provider \
//!     --objects 50 --kv-latency 50ms --mounts 20 --concurrency 1
//! ```
//!
//! Everything listens on 127.0.0.1 or in a temp directory; every loop is bounded by a count and
//! by `--max-duration`.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "a benchmark tool: a broken setup must stop the run loudly"
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use common::fake_azure::{FakeAzure, FakeResponse, Request};
use common::fake_keyvault::Access;
use hyper_util::rt::TokioIo;
use rust_azure_provider::grpc::proto::v1alpha1 as pb;
use rust_azure_provider::grpc::proto::v1alpha1::csi_driver_provider_client::CsiDriverProviderClient;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

const VAULT: &str = "benchkv";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const ENTRA: &str = "login.microsoftonline.com";

/// Identity mode the Mounts use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum IdentityKind {
    /// Workload identity: a distinct service-account token per identity.
    Wi,
    /// Service principal: a distinct client secret per identity (nodePublishSecretRef).
    Sp,
}

#[derive(Debug, Parser)]
#[command(about = "Drive Mount load against the provider binary with fake Azure endpoints")]
struct Args {
    /// The provider binary (a release build).
    #[arg(long)]
    provider: PathBuf,
    /// Scenario label copied into the output.
    #[arg(long, default_value = "custom")]
    name: String,
    /// Secrets per Mount.
    #[arg(long, default_value_t = 5)]
    objects: usize,
    /// Measured Mounts.
    #[arg(long, default_value_t = 1000)]
    mounts: usize,
    /// Mounts in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Distinct identities (Mount i uses identity i mod N).
    #[arg(long, default_value_t = 1)]
    identities: usize,
    /// Identity mode.
    #[arg(long, value_enum, default_value_t = IdentityKind::Wi)]
    identity: IdentityKind,
    /// Added to every Key Vault answer (one simulated round trip).
    #[arg(long, default_value = "0ms", value_parser = rust_azure_provider::config::parse_duration)]
    kv_latency: Duration,
    /// Mounts at full concurrency before measuring, after one Mount per identity.
    #[arg(long)]
    warmup: Option<usize>,
    /// Size of each secret value.
    #[arg(long, default_value_t = 32)]
    value_bytes: usize,
    /// gRPC connections to the socket (the driver uses one).
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Stop the measured phase after this long even if Mounts remain.
    #[arg(long, default_value = "120s", value_parser = rust_azure_provider::config::parse_duration)]
    max_duration: Duration,
    /// Start the provider this many times (the last one serves the load); start-up time is
    /// reported as the median.
    #[arg(long, default_value_t = 3)]
    startup_runs: usize,
    /// Provider log file (stderr); a temp file by default.
    #[arg(long)]
    provider_log: Option<PathBuf>,
    /// Extra provider flags, after `--`.
    #[arg(last = true)]
    provider_args: Vec<String>,
}

/// Counters the fakes keep.
#[derive(Default)]
struct Counters {
    kv_gets: AtomicU64,
    token_requests: AtomicU64,
}

/// A point-in-time reading of everything that is differenced.
#[derive(Clone, Debug)]
struct Snapshot {
    at: Instant,
    kv_gets: u64,
    token_requests: u64,
    provider_cpu_ns: u64,
    provider_cpu_ticks: u64,
    self_cpu_ticks: u64,
    metrics: BTreeMap<String, f64>,
}

fn clk_tck() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// utime + stime of a process in clock ticks.
fn stat_ticks(pid: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name start at field 3 (state).
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(11) + get(12)
}

/// CPU nanoseconds of every live thread of `pid` (schedstat; finer than stat's ticks).
fn schedstat_ns(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// A `/proc/<pid>/status` field in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let v = l.strip_prefix(field)?.strip_prefix(':')?;
            v.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

async fn scrape(port: u16) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return out;
    };
    let req = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).await.is_err() {
        return out;
    }
    let mut body = String::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut body)).await;
    if !matches!(read, Ok(Ok(_))) {
        return out;
    }
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let Some((name_labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = name_labels.split('{').next().unwrap_or_default();
        if let Ok(v) = value.parse::<f64>() {
            *out.entry(name.to_owned()).or_default() += v;
        }
    }
    out
}

async fn snapshot(pid: u32, metrics_port: u16, counters: &Counters) -> Snapshot {
    Snapshot {
        at: Instant::now(),
        kv_gets: counters.kv_gets.load(Ordering::Relaxed),
        token_requests: counters.token_requests.load(Ordering::Relaxed),
        provider_cpu_ns: schedstat_ns(pid),
        provider_cpu_ticks: stat_ticks(&pid.to_string()),
        self_cpu_ticks: stat_ticks("self"),
        metrics: scrape(metrics_port).await,
    }
}

async fn channel(path: &Path) -> Channel {
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

/// A running provider and what it needs to stay alive.
struct Running {
    child: Child,
    _dir: tempfile::TempDir,
    socket: PathBuf,
    metrics_port: u16,
    startup: Duration,
}

impl Running {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (graceful), then SIGKILL if it has not exited within 5 s.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns the provider and waits (at most 10 s) until `Version` answers on its socket.
async fn spawn_provider(args: &Args, fake: &FakeAzure, log: &Path) -> Running {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("rust-azure.sock");
    let metrics_port = free_port();
    let health_port = free_port();
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("provider log file");
    let mut cmd = Command::new(&args.provider);
    cmd.arg(format!("--provider-dir={}", dir.path().display()))
        .arg(format!("--health-addr=127.0.0.1:{health_port}"))
        .arg(format!("--metrics-addr=127.0.0.1:{metrics_port}"))
        .arg(format!("--ca-bundle={}", fake.pki.ca_path().display()))
        .args(&args.provider_args)
        .env("HTTPS_PROXY", fake.proxy_url())
        .env("HTTP_PROXY", fake.proxy_url())
        .env_remove("https_proxy")
        .env_remove("http_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file));
    let started = Instant::now();
    let child = cmd.spawn().expect("spawn the provider binary");
    let deadline = started + Duration::from_secs(10);
    loop {
        if Instant::now() > deadline {
            panic!(
                "the provider did not answer Version within 10 s; see {}",
                log.display()
            );
        }
        if let Ok(stream) = UnixStream::connect(&socket).await {
            drop(stream);
            let ch = channel(&socket).await;
            let mut client = CsiDriverProviderClient::new(ch);
            if client
                .version(pb::VersionRequest {
                    version: "v1alpha1".into(),
                })
                .await
                .is_ok()
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    Running {
        startup: started.elapsed(),
        child,
        _dir: dir,
        socket,
        metrics_port,
    }
}

fn identity_of(req: &Request) -> Option<usize> {
    let form = req.form();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    get("client_assertion")
        .and_then(|a| a.strip_prefix("bench-sa-"))
        .or_else(|| get("client_secret").and_then(|s| s.strip_prefix("bench-secret-")))
        .and_then(|i| i.parse().ok())
}

fn mount_request(args: &Args, identity: usize, objects_yaml: &str) -> pb::MountRequest {
    let mut attrs = json!({
        "csi.storage.k8s.io/pod.name": format!("bench-{identity}"),
        "csi.storage.k8s.io/pod.namespace": "bench",
        "csi.storage.k8s.io/pod.uid": format!("00000000-0000-0000-0000-{identity:012}"),
        "csi.storage.k8s.io/serviceAccount.name": "bench",
        "secretProviderClass": "bench",
        "keyvaultName": VAULT,
        "tenantId": TENANT,
        "objects": objects_yaml,
    });
    let mut secrets = "null".to_owned();
    match args.identity {
        IdentityKind::Wi => {
            attrs["clientID"] = json!("00000000-0000-0000-0000-00000000c11e");
            attrs["csi.storage.k8s.io/serviceAccount.tokens"] = json!(
                json!({"api://AzureADTokenExchange": {"token": format!("bench-sa-{identity}"), "expirationTimestamp": "2099-01-01T00:00:00Z"}}).to_string()
            );
        }
        IdentityKind::Sp => {
            secrets = json!({"clientid": "bench-client", "clientsecret": format!("bench-secret-{identity}")}).to_string();
        }
    }
    pb::MountRequest {
        attributes: attrs.to_string(),
        secrets,
        target_path: format!(
            "/var/lib/kubelet/pods/bench-{identity}/volumes/kubernetes.io~csi/v/mount"
        ),
        permission: "420".into(),
        current_object_version: vec![],
    }
}

/// Result of a batch of Mounts.
#[derive(Default)]
struct Batch {
    latencies: Vec<Duration>,
    errors: usize,
    first_error: Option<String>,
    wall: Duration,
}

/// Runs `count` Mounts (`concurrency` at a time, identities round-robin starting at `first`),
/// stopping early after `max`.
async fn run_batch(
    args: &Arc<Args>,
    channels: &[Channel],
    requests: &Arc<Vec<pb::MountRequest>>,
    count: usize,
    concurrency: usize,
    max: Duration,
) -> Batch {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let stop_at = started + max;
    let mut tasks = Vec::new();
    for w in 0..concurrency.max(1).min(count.max(1)) {
        let next = next.clone();
        let requests = requests.clone();
        let args = args.clone();
        let mut client = CsiDriverProviderClient::new(channels[w % channels.len()].clone())
            .max_decoding_message_size(64 << 20);
        tasks.push(tokio::spawn(async move {
            let mut b = Batch::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count || Instant::now() > stop_at {
                    break;
                }
                let req = requests[i % requests.len()].clone();
                let t = Instant::now();
                // The provider's own --mount-timeout is 90 s; this only catches a hang.
                let res = tokio::time::timeout(Duration::from_secs(120), client.mount(req)).await;
                let elapsed = t.elapsed();
                let res = match res {
                    Ok(r) => r,
                    Err(_) => Err(tonic::Status::deadline_exceeded("no answer within 120 s")),
                };
                match res {
                    Ok(r) if r.get_ref().files.len() == args.objects => b.latencies.push(elapsed),
                    Ok(r) => {
                        b.errors += 1;
                        b.first_error.get_or_insert_with(|| {
                            format!(
                                "expected {} files, got {}",
                                args.objects,
                                r.get_ref().files.len()
                            )
                        });
                    }
                    Err(e) => {
                        b.errors += 1;
                        b.first_error
                            .get_or_insert_with(|| format!("{:?}: {}", e.code(), e.message()));
                    }
                }
            }
            b
        }));
    }
    let mut all = Batch::default();
    for t in tasks {
        let b = t.await.expect("mount worker");
        all.latencies.extend(b.latencies);
        all.errors += b.errors;
        if all.first_error.is_none() {
            all.first_error = b.first_error;
        }
    }
    all.wall = started.elapsed();
    all.latencies.sort();
    all
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn median_duration(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn metric(s: &Snapshot, name: &str) -> f64 {
    s.metrics
        .get(&format!("rust_azure_provider_{name}"))
        .copied()
        .unwrap_or(0.0)
}

fn main() {
    let args = Arc::new(Args::parse());
    assert!(args.objects >= 1, "--objects must be at least 1");
    assert!(args.identities >= 1, "--identities must be at least 1");
    assert!(args.connections >= 1, "--connections must be at least 1");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(args));
}

async fn run(args: Arc<Args>) {
    let tck = clk_tck();
    let fake = FakeAzure::start().await;
    fake.set_request_log(false);
    let counters = Arc::new(Counters::default());

    fake.keyvault.add_vault(VAULT);
    let value = "v".repeat(args.value_bytes);
    for i in 0..args.objects {
        fake.keyvault.add_secret(
            VAULT,
            &format!("s{i}"),
            &format!("{i:032x}"),
            &value,
            1_700_000_000,
        );
    }
    for i in 0..args.identities {
        fake.keyvault
            .grant(VAULT, &format!("bench-at-{i}"), Access::All);
    }
    fake.keyvault.set_latency(args.kv_latency);
    let kv = fake.keyvault.handler();
    let c = counters.clone();
    fake.route(
        "*.vault.azure.net",
        Arc::new(move |r: &Request| {
            c.kv_gets.fetch_add(1, Ordering::Relaxed);
            kv(r)
        }),
    );
    let c = counters.clone();
    fake.route_fn(ENTRA, move |r| {
        c.token_requests.fetch_add(1, Ordering::Relaxed);
        match identity_of(r) {
            Some(i) => FakeResponse::json(
                200,
                format!(r#"{{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"bench-at-{i}"}}"#),
            ),
            None => FakeResponse::json(400, r#"{"error":"invalid_client"}"#),
        }
    });

    let log = args.provider_log.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("loadgen-provider-{}.log", std::process::id()))
    });
    let _ = std::fs::remove_file(&log);

    // Start-up: spawn -> Version answered, several times; the last instance serves the load.
    let mut startups = Vec::new();
    let mut provider = None;
    for i in 0..args.startup_runs.max(1) {
        let p = spawn_provider(&args, &fake, &log).await;
        startups.push(p.startup);
        if i + 1 == args.startup_runs.max(1) {
            provider = Some(p);
        } else {
            p.stop();
        }
    }
    let provider = provider.expect("a provider");
    let pid = provider.pid();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle_rss = status_kib(pid, "VmRSS");
    let idle_anon = status_kib(pid, "RssAnon");
    let idle_file = status_kib(pid, "RssFile");

    let mut channels = Vec::new();
    for _ in 0..args.connections {
        channels.push(channel(&provider.socket).await);
    }
    let objects_yaml = {
        let mut y = String::from("array:\n");
        for i in 0..args.objects {
            y.push_str(&format!(
                "  - |\n    objectName: s{i}\n    objectType: secret\n"
            ));
        }
        y
    };
    let requests: Arc<Vec<pb::MountRequest>> = Arc::new(
        (0..args.identities)
            .map(|i| mount_request(&args, i, &objects_yaml))
            .collect(),
    );

    // Warm-up: one Mount per identity (tokens), then Mounts at full concurrency (connections).
    let warm = run_batch(
        &args,
        &channels,
        &requests,
        args.identities,
        args.concurrency,
        args.max_duration,
    )
    .await;
    let warmup = args.warmup.unwrap_or(args.concurrency * 2);
    let warm2 = run_batch(
        &args,
        &channels,
        &requests,
        warmup,
        args.concurrency,
        args.max_duration,
    )
    .await;
    if warm.errors + warm2.errors > 0 {
        provider.stop();
        panic!(
            "warm-up Mounts failed: {}; provider log: {}",
            warm.first_error.or(warm2.first_error).unwrap_or_default(),
            log.display()
        );
    }

    let before = snapshot(pid, provider.metrics_port, &counters).await;
    let batch = run_batch(
        &args,
        &channels,
        &requests,
        args.mounts,
        args.concurrency,
        args.max_duration,
    )
    .await;
    let after = snapshot(pid, provider.metrics_port, &counters).await;
    let peak_rss = status_kib(pid, "VmHWM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_after = status_kib(pid, "VmRSS");
    drop(channels);
    provider.stop();

    let ok = batch.latencies.len();
    let n = ok.max(1) as f64;
    let secs = after.at.duration_since(before.at).as_secs_f64();
    let kv_gets = after.kv_gets - before.kv_gets;
    let token_requests = after.token_requests - before.token_requests;
    let cpu_s = (after.provider_cpu_ns - before.provider_cpu_ns) as f64 / 1e9;
    let cpu_ticks_s = (after.provider_cpu_ticks - before.provider_cpu_ticks) as f64 / tck as f64;
    let self_cpu_s = (after.self_cpu_ticks - before.self_cpu_ticks) as f64 / tck as f64;
    let p50 = percentile(&batch.latencies, 50.0);
    let p99 = percentile(&batch.latencies, 99.0);
    let max = batch.latencies.last().copied().unwrap_or_default();
    let startup = median_duration(startups.clone());
    let rt = args.kv_latency.as_secs_f64();
    let m_attempts =
        metric(&after, "keyvault_attempts_total") - metric(&before, "keyvault_attempts_total");
    let m_coalesced =
        metric(&after, "keyvault_coalesced_total") - metric(&before, "keyvault_coalesced_total");
    let m_tokens = metric(&after, "token_requests_total") - metric(&before, "token_requests_total");
    let fetched = kv_gets.max(1) as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;

    println!(
        "scenario {}: {} objects/Mount, {} Mounts, concurrency {}, {} identities ({:?}), Key Vault latency {:?}, {} connection(s), provider args {:?}",
        args.name,
        args.objects,
        args.mounts,
        args.concurrency,
        args.identities,
        args.identity,
        args.kv_latency,
        args.connections,
        args.provider_args
    );
    let rows: Vec<(&str, String)> = vec![
        ("Mounts ok / errors", format!("{ok} / {}", batch.errors)),
        ("Mount latency p50", format!("{:.2} ms", ms(p50))),
        ("Mount latency p99", format!("{:.2} ms", ms(p99))),
        ("Mount latency max", format!("{:.2} ms", ms(max))),
        (
            "p50 / Key Vault round trip",
            if rt > 0.0 {
                format!("{:.2}", p50.as_secs_f64() / rt)
            } else {
                "n/a".into()
            },
        ),
        ("Mounts per second", format!("{:.0}", ok as f64 / secs)),
        (
            "Key Vault GETs per Mount (fake)",
            format!("{:.3}", kv_gets as f64 / n),
        ),
        (
            "Key Vault attempts per Mount (/metrics)",
            format!("{:.3}", m_attempts / n),
        ),
        (
            "Key Vault coalesced per Mount (/metrics)",
            format!("{:.3}", m_coalesced / n),
        ),
        (
            "token requests per Mount (fake)",
            format!("{:.3}", token_requests as f64 / n),
        ),
        (
            "token requests per Mount (/metrics)",
            format!("{:.3}", m_tokens / n),
        ),
        (
            "provider CPU per Mount",
            format!("{:.1} µs", cpu_s * 1e6 / n),
        ),
        (
            "provider CPU per fetched object",
            format!("{:.1} µs", cpu_s * 1e6 / fetched),
        ),
        (
            "provider CPU (schedstat / stat)",
            format!("{cpu_s:.3} s / {cpu_ticks_s:.2} s"),
        ),
        (
            "provider CPU-bound capacity",
            format!("{:.0} Mounts/CPU-s", ok as f64 / cpu_s.max(1e-9)),
        ),
        (
            "load generator + fakes CPU",
            format!("{self_cpu_s:.2} s over {secs:.2} s wall"),
        ),
        (
            "idle RSS (after start-up)",
            format!("{:.1} MiB", idle_rss as f64 / 1024.0),
        ),
        (
            "peak RSS (VmHWM)",
            format!("{:.1} MiB", peak_rss as f64 / 1024.0),
        ),
        (
            "RSS after the run",
            format!("{:.1} MiB", rss_after as f64 / 1024.0),
        ),
        (
            "start-up to serving (median)",
            format!(
                "{:.1} ms of {:?}",
                ms(startup),
                startups
                    .iter()
                    .map(|d| (ms(*d) * 10.0).round() / 10.0)
                    .collect::<Vec<_>>()
            ),
        ),
    ];
    for (k, v) in &rows {
        println!("  {k:<42} {v}");
    }
    let line = json!({
        "scenario": args.name,
        "objects": args.objects,
        "mounts": args.mounts,
        "concurrency": args.concurrency,
        "identities": args.identities,
        "identity": format!("{:?}", args.identity).to_lowercase(),
        "kv_latency_ms": ms(args.kv_latency),
        "connections": args.connections,
        "provider_args": args.provider_args,
        "ok": ok,
        "errors": batch.errors,
        "first_error": batch.first_error,
        "wall_s": secs,
        "p50_ms": ms(p50),
        "p99_ms": ms(p99),
        "max_ms": ms(max),
        "p50_round_trips": if rt > 0.0 { Some(p50.as_secs_f64() / rt) } else { None },
        "mounts_per_s": ok as f64 / secs,
        "kv_gets_per_mount": kv_gets as f64 / n,
        "kv_attempts_per_mount_metrics": m_attempts / n,
        "kv_coalesced_per_mount_metrics": m_coalesced / n,
        "token_requests_per_mount": token_requests as f64 / n,
        "token_requests_per_mount_metrics": m_tokens / n,
        "provider_cpu_s": cpu_s,
        "provider_cpu_stat_s": cpu_ticks_s,
        "provider_cpu_us_per_mount": cpu_s * 1e6 / n,
        "provider_cpu_us_per_object": cpu_s * 1e6 / fetched,
        "provider_mounts_per_cpu_s": ok as f64 / cpu_s.max(1e-9),
        "loadgen_cpu_s": self_cpu_s,
        "idle_rss_kib": idle_rss,
        "idle_rss_anon_kib": idle_anon,
        "idle_rss_file_kib": idle_file,
        "peak_rss_kib": peak_rss,
        "rss_after_kib": rss_after,
        "startup_ms": ms(startup),
        "startup_samples_ms": startups.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
    });
    println!("BENCH_JSON {line}");
    if batch.errors > 0 {
        eprintln!(
            "{} Mounts failed, first: {}; provider log: {}",
            batch.errors,
            batch.first_error.unwrap_or_default(),
            log.display()
        );
        std::process::exit(1);
    }
}
