//! Cluster simulator: how many Key Vault and Entra ID requests a cluster generates with each
//! provider, and how large a cluster stays under Key Vault's limit (4,000 GETs per 10 s per vault).
//!
//! ```text
//! cargo build --release --locked --bin rust-azure-provider
//! cargo run --release --example cluster_sim                 # the model (BENCHMARKS.md mix)
//! cargo run --release --example cluster_sim -- --validate   # plus a real multi-process run
//! ```
//!
//! # Model
//!
//! A discrete-event model of one node at a time (nodes are independent and every workload reads
//! the same vault, so vault-wide rates are the per-node rate times the node count):
//!
//! * `--pods` pods per node, `--identities` workload identities per node (pod `j` runs as
//!   identity `j mod identities`; the pods of one identity read the same `--objects` objects).
//! * Driver v1.6 (`requiresRepublish`): kubelet re-publishes each volume every 60–75 s (uniform
//!   per interval, random phase per pod); once `--rotation-poll-interval` has passed with unchanged
//!   contents every republish reaches the provider (protocol.md §7.1), so in steady state each
//!   republish is a Mount whatever the rotation interval.
//! * Driver v1.5 (rotation reconciler): every rotation interval (random phase per node) the
//!   reconciler Mounts every pod of the node one after another (`RECONCILER_STEP` apart).
//! * Workload identity tokens: kubelet renews each pod's service-account token at 80 % of its
//!   1 h lifetime (a new token every 48 min, random phase per pod); an Entra ID access token is
//!   refreshed 5 min before its 1 h expiry.
//!
//! Per Mount, by provider:
//!
//! * **reference** (Azure provider): one token request, one unauthenticated challenge request and
//!   one GET per object, sequential (beyond.md §1), whatever happened before.
//! * **ours, cache off**: a token request only when the token cache has no fresh token for this
//!   exact service-account token; one GET per object.
//! * **ours, cache on** (`--object-cache-ttl`): tokens as above; a GET per object only when the
//!   node's entry for (identity, object) is older than the TTL (an entry's age counts from the
//!   answer, `FETCH_LATENCY` after the Mount that fetched it).
//!
//! With v1.5 and a TTL of exactly the rotation interval, the next pass finds the entry just
//! younger than the TTL when the pass starts on time (every other pass fetches); a pass that
//! starts a few milliseconds late fetches. The validation therefore runs v1.5 at 0.9 × the
//! rotation interval, where every pass fetches whatever the timing.
//!
//! Rates are measured over `--horizon` after one hour of simulated warm-up, averaged over
//! `--sample-nodes` nodes.
//!
//! # Validation (`--validate`)
//!
//! The same schedule, scaled down in time by `--time-scale` (every interval, TTL and token
//! lifetime divided by it), is played against `--validate-nodes` release provider processes (one
//! per simulated node, each on its own socket) sharing one fake Azure (Entra ID accepting every
//! pod's token for its identity, a vault answering every object): a driver-like loop per node
//! sends each Mount at its scheduled time. The request counts seen by the fake are compared with
//! the model's counts for the very same schedule (cold start included), for the cache off and on
//! and both driver versions; more than 10 % apart fails the run (exit code 1).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use common::fake_azure::{FakeAzure, FakeResponse, Request};
use common::provider_process::{ProviderProcess, http_get};
use common::reliability::{ENTRA, Identity, entra_token, mount_request, object_yaml};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// Kubelet's republish period range (seconds) with driver v1.6.
const REPUBLISH_MIN: f64 = 60.0;
const REPUBLISH_MAX: f64 = 75.0;
/// Gap between two Mounts of one v1.5 reconciler pass (seconds).
const RECONCILER_STEP: f64 = 0.02;
/// A pod's service-account token is renewed after 80 % of 1 h.
const SA_TOKEN_RENEWAL: f64 = 0.8 * 3600.0;
/// An access token (1 h) is used until 5 min before expiry.
const ACCESS_TOKEN_USE: f64 = 3600.0 - 300.0;
/// Time from a Mount's start to its GET's answer, when the cache entry's TTL starts (real time,
/// never compressed).
const FETCH_LATENCY: f64 = 0.005;
/// Warm-up before rates are measured.
const WARMUP: f64 = 3600.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Driver {
    /// v1.5.x rotation reconciler.
    #[value(name = "v1.5")]
    V15,
    /// v1.6.x republish.
    #[value(name = "v1.6")]
    V16,
}

impl Driver {
    fn name(self) -> &'static str {
        match self {
            Self::V15 => "v1.5",
            Self::V16 => "v1.6",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Provider {
    Reference,
    Ours { ttl: f64 },
}

impl Provider {
    fn name(self) -> String {
        match self {
            Self::Reference => "reference".to_owned(),
            Self::Ours { ttl: 0.0 } => "ours, cache off".to_owned(),
            Self::Ours { ttl } => format!("ours, cache on (TTL {})", secs(ttl)),
        }
    }
}

/// The workload mix of every node.
#[derive(Clone, Copy, Debug)]
struct Mix {
    pods: u32,
    identities: u32,
    objects: u32,
    rotation: f64,
    driver: Driver,
}

/// One Mount of the schedule.
#[derive(Clone, Copy, Debug)]
struct MountAt {
    t: f64,
    pod: u32,
    /// Service-account token generation of the pod at `t`.
    epoch: u64,
}

/// Every interval of the model divided by `scale` (1 for real time).
#[derive(Clone, Copy, Debug)]
struct Clock {
    scale: f64,
}

impl Clock {
    fn s(self, seconds: f64) -> f64 {
        seconds / self.scale
    }
}

/// The Mounts of one node in `[0, end)`, sorted by time.
fn schedule(mix: &Mix, clock: Clock, start: f64, end: f64, rng: &mut StdRng) -> Vec<MountAt> {
    let mut out = Vec::new();
    let sa_phase: Vec<f64> = (0..mix.pods)
        .map(|_| rng.random_range(0.0..clock.s(SA_TOKEN_RENEWAL)))
        .collect();
    let epoch =
        |pod: u32, t: f64| ((t + sa_phase[pod as usize]) / clock.s(SA_TOKEN_RENEWAL)) as u64;
    match mix.driver {
        Driver::V16 => {
            for pod in 0..mix.pods {
                let mut t = start + rng.random_range(0.0..clock.s(REPUBLISH_MAX));
                while t < end {
                    out.push(MountAt {
                        t,
                        pod,
                        epoch: epoch(pod, t),
                    });
                    t += rng.random_range(clock.s(REPUBLISH_MIN)..=clock.s(REPUBLISH_MAX));
                }
            }
        }
        Driver::V15 => {
            let mut tick = start + rng.random_range(0.0..clock.s(mix.rotation));
            while tick < end {
                for pod in 0..mix.pods {
                    let t = tick + f64::from(pod) * clock.s(RECONCILER_STEP);
                    out.push(MountAt {
                        t,
                        pod,
                        epoch: epoch(pod, t),
                    });
                }
                tick += clock.s(mix.rotation);
            }
        }
    }
    out.sort_by(|a, b| a.t.total_cmp(&b.t));
    out
}

/// Requests one node's schedule causes, counted for Mounts at or after `from`.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    keyvault: u64,
    entra: u64,
    mounts: u64,
}

fn play(mix: &Mix, clock: Clock, provider: Provider, mounts: &[MountAt], from: f64) -> Counts {
    let mut c = Counts::default();
    // (pod, token generation) -> when the access token was obtained.
    let mut tokens: HashMap<(u32, u64), f64> = HashMap::new();
    // (identity, object) -> when it was fetched.
    let mut objects: HashMap<(u32, u32), f64> = HashMap::new();
    for m in mounts {
        let counted = m.t >= from;
        let (entra, kv) = match provider {
            Provider::Reference => (1, u64::from(mix.objects) + 1),
            Provider::Ours { ttl } => {
                let fresh = tokens
                    .get(&(m.pod, m.epoch))
                    .is_some_and(|got| m.t < got + clock.s(ACCESS_TOKEN_USE));
                let entra = if fresh {
                    0
                } else {
                    tokens.insert((m.pod, m.epoch), m.t);
                    1
                };
                let identity = m.pod % mix.identities;
                let mut kv = 0;
                for object in 0..mix.objects {
                    let hit = ttl > 0.0
                        && objects
                            .get(&(identity, object))
                            .is_some_and(|f| m.t < f + clock.s(ttl));
                    if !hit {
                        objects.insert((identity, object), m.t + FETCH_LATENCY);
                        kv += 1;
                    }
                }
                (entra, kv)
            }
        };
        if counted {
            c.entra += entra;
            c.keyvault += kv;
            c.mounts += 1;
        }
    }
    c
}

/// Steady-state rates of one node: Key Vault requests per 10 s, Entra ID requests per minute,
/// Mounts per minute.
#[derive(Clone, Copy, Debug)]
struct Rates {
    kv_per_10s: f64,
    entra_per_min: f64,
    mounts_per_min: f64,
}

fn rates(mix: &Mix, provider: Provider, horizon: f64, sample_nodes: u32, seed: u64) -> Rates {
    let clock = Clock { scale: 1.0 };
    let mut total = Counts::default();
    for node in 0..sample_nodes {
        let mut rng = StdRng::seed_from_u64(seed ^ (u64::from(node) << 20));
        let mounts = schedule(mix, clock, 0.0, WARMUP + horizon, &mut rng);
        let c = play(mix, clock, provider, &mounts, WARMUP);
        total.keyvault += c.keyvault;
        total.entra += c.entra;
        total.mounts += c.mounts;
    }
    let node_seconds = horizon * f64::from(sample_nodes);
    Rates {
        kv_per_10s: total.keyvault as f64 / node_seconds * 10.0,
        entra_per_min: total.entra as f64 / node_seconds * 60.0,
        mounts_per_min: total.mounts as f64 / node_seconds * 60.0,
    }
}

fn secs(s: f64) -> String {
    if s >= 60.0 && (s % 60.0) == 0.0 {
        format!("{}m", s / 60.0)
    } else {
        format!("{s}s")
    }
}

fn parse_duration(v: &str) -> Result<Duration, String> {
    humantime::parse_duration(v).map_err(|e| e.to_string())
}

#[derive(Debug, Parser)]
#[command(about = "Key Vault and Entra ID request rates of a cluster, by provider")]
struct Args {
    /// Pods per node.
    #[arg(long, default_value_t = 30)]
    pods: u32,
    /// Workload identities per node.
    #[arg(long, default_value_t = 3)]
    identities: u32,
    /// Objects per pod.
    #[arg(long, default_value_t = 3)]
    objects: u32,
    /// The driver's --rotation-poll-interval.
    #[arg(long, value_parser = parse_duration, default_value = "2m")]
    rotation: Duration,
    /// --object-cache-ttl of "ours, cache on" (default: the rotation interval).
    #[arg(long, value_parser = parse_duration)]
    ttl: Option<Duration>,
    /// Key Vault GETs per 10 s per vault.
    #[arg(long, default_value_t = 4000.0)]
    limit: f64,
    /// Cluster size of the "at N nodes" columns.
    #[arg(long, default_value_t = 100)]
    nodes: u32,
    /// Simulated time per node after warm-up.
    #[arg(long, value_parser = parse_duration, default_value = "2h")]
    horizon: Duration,
    /// Nodes simulated (rates are averaged over them).
    #[arg(long, default_value_t = 20)]
    sample_nodes: u32,
    /// Random seed (phases and republish intervals).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Skip the check that ours with the cache off never exceeds the reference.
    #[arg(long)]
    no_sweep: bool,
    /// Also run the real multi-process validation.
    #[arg(long)]
    validate: bool,
    /// Provider processes (simulated nodes) of the validation.
    #[arg(long, default_value_t = 8)]
    validate_nodes: u32,
    /// Time compression of the validation (20: a 2 min rotation interval takes 6 s).
    #[arg(long, default_value_t = 20.0)]
    time_scale: f64,
    /// Length of each validation run.
    #[arg(long, value_parser = parse_duration, default_value = "25s")]
    validate_duration: Duration,
    /// The provider binary (release build).
    #[arg(long, default_value = "target/release/rust-azure-provider")]
    provider: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rotation = args.rotation.as_secs_f64();
    let ttl = args.ttl.map_or(rotation, |d| d.as_secs_f64());
    let horizon = args.horizon.as_secs_f64();
    println!(
        "mix: {} pods/node, {} identities/node, {} objects/pod, rotation every {}; limit {} Key Vault requests per 10 s per vault; model: {} nodes x {} simulated",
        args.pods,
        args.identities,
        args.objects,
        secs(rotation),
        args.limit,
        args.sample_nodes,
        secs(horizon)
    );
    println!();
    println!(
        "| driver | provider | Mounts/min/node | KV req/10 s/node | Entra req/min/node | KV req/10 s at {n} nodes | Entra req/min at {n} nodes | largest cluster under the limit |",
        n = args.nodes
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let mut json = Vec::new();
    for driver in [Driver::V15, Driver::V16] {
        let mix = Mix {
            pods: args.pods,
            identities: args.identities,
            objects: args.objects,
            rotation,
            driver,
        };
        let mut reference_max = 0.0;
        for provider in [
            Provider::Reference,
            Provider::Ours { ttl: 0.0 },
            Provider::Ours { ttl },
        ] {
            let r = rates(&mix, provider, horizon, args.sample_nodes, args.seed);
            let max_nodes = (args.limit / r.kv_per_10s).floor();
            if provider == Provider::Reference {
                reference_max = max_nodes;
            }
            let n = f64::from(args.nodes);
            println!(
                "| {} | {} | {:.1} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} ({:.1}x reference) |",
                driver.name(),
                provider.name(),
                r.mounts_per_min,
                r.kv_per_10s,
                r.entra_per_min,
                r.kv_per_10s * n,
                r.entra_per_min * n,
                max_nodes,
                max_nodes / reference_max
            );
            json.push(json!({
                "driver": driver.name(),
                "provider": provider.name(),
                "kv_per_10s_per_node": r.kv_per_10s,
                "entra_per_min_per_node": r.entra_per_min,
                "largest_cluster": max_nodes,
            }));
        }
    }
    println!();
    println!("SIM_JSON {}", serde_json::Value::Array(json));
    if !args.no_sweep {
        sweep(&args)?;
    }
    if args.validate {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(validate(&args, ttl))?;
    }
    Ok(())
}

/// Checks "never more Key Vault or Entra ID requests than the reference with the cache off"
/// over a grid of scenarios.
fn sweep(args: &Args) -> anyhow::Result<()> {
    let mut checked = 0;
    for driver in [Driver::V15, Driver::V16] {
        for pods in [1, 5, 30, 110] {
            for identities in [1, 3, 10] {
                for objects in [1, 3, 10] {
                    for rotation in [10.0, 120.0, 3600.0] {
                        if identities > pods {
                            continue;
                        }
                        let mix = Mix {
                            pods,
                            identities,
                            objects,
                            rotation,
                            driver,
                        };
                        let reference = rates(&mix, Provider::Reference, 3600.0, 2, args.seed);
                        let off = rates(&mix, Provider::Ours { ttl: 0.0 }, 3600.0, 2, args.seed);
                        if off.kv_per_10s > reference.kv_per_10s
                            || off.entra_per_min > reference.entra_per_min
                        {
                            anyhow::bail!(
                                "ours with the cache off exceeds the reference for {mix:?}: {off:?} vs {reference:?}"
                            );
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    println!(
        "sweep: in all {checked} scenarios (driver x pods x identities x objects x rotation) ours with the cache off makes fewer Key Vault and at most as many Entra ID requests as the reference"
    );
    Ok(())
}

/// Counters at the fake.
#[derive(Clone, Default)]
struct FakeCounts {
    keyvault: Arc<AtomicUsize>,
    entra: Arc<AtomicUsize>,
}

const SIM_VAULT: &str = "simvault";

fn install_fakes(fake: &FakeAzure, counts: &FakeCounts) {
    let entra = counts.entra.clone();
    let issued = Arc::new(AtomicUsize::new(0));
    fake.route_fn(ENTRA, move |r: &Request| {
        entra.fetch_add(1, Ordering::SeqCst);
        let form = r.form();
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match (get("client_id"), get("client_assertion")) {
            (Some(app), Some(sa)) if app.starts_with("app-") && sa.starts_with("sa-") => {
                let n = issued.fetch_add(1, Ordering::SeqCst);
                entra_token(&format!("tok-{app}-{n}"))
            }
            _ => FakeResponse::json(401, json!({"error":"invalid_client"}).to_string()),
        }
    });
    let kv = counts.keyvault.clone();
    fake.route_fn(&format!("{SIM_VAULT}.vault.azure.net"), move |r: &Request| {
        kv.fetch_add(1, Ordering::SeqCst);
        if !r.bearer().is_some_and(|b| b.starts_with("tok-")) {
            return FakeResponse::json(401, json!({"error":{"code":"Unauthorized"}}).to_string());
        }
        let name = r
            .path
            .trim_start_matches("/secrets/")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        FakeResponse::json(
            200,
            json!({"value": format!("value-of-{name}"), "id": format!("https://{SIM_VAULT}.vault.azure.net/secrets/{name}/v1"), "attributes": {"enabled": true}}).to_string(),
        )
    });
}

async fn validate(args: &Args, ttl: f64) -> anyhow::Result<()> {
    let clock = Clock {
        scale: args.time_scale,
    };
    let duration = args.validate_duration.as_secs_f64();
    anyhow::ensure!(
        args.provider.exists(),
        "{} does not exist: cargo build --release --locked --bin rust-azure-provider",
        args.provider.display()
    );
    println!();
    println!(
        "validation: {} provider processes, time compressed {}x (TTL {} -> {:.1}s), {}s per run, request counts from the fake",
        args.validate_nodes,
        args.time_scale,
        secs(ttl),
        clock.s(ttl),
        duration
    );
    println!();
    println!(
        "| driver | provider | Mounts | KV requests: model | KV: measured | Δ | Entra requests: model | Entra: measured | Δ | cache hits / misses (/metrics) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let fake = FakeAzure::start().await;
    fake.set_request_log(false);
    let counts = FakeCounts::default();
    install_fakes(&fake, &counts);
    let mut worst: f64 = 0.0;
    for driver in [Driver::V15, Driver::V16] {
        let mix = Mix {
            pods: args.pods,
            identities: args.identities,
            objects: args.objects,
            rotation: args.rotation.as_secs_f64(),
            driver,
        };
        let schedules: Vec<Vec<MountAt>> = (0..args.validate_nodes)
            .map(|node| {
                let mut rng = StdRng::seed_from_u64(args.seed ^ (u64::from(node) << 20) ^ 0xabc);
                schedule(&mix, clock, 0.0, duration, &mut rng)
            })
            .collect();
        // Off the v1.5 knife edge (see the module documentation).
        let on_ttl = match driver {
            Driver::V15 => ttl.min(0.9 * mix.rotation),
            Driver::V16 => ttl,
        };
        for provider in [Provider::Ours { ttl: 0.0 }, Provider::Ours { ttl: on_ttl }] {
            let mut model = Counts::default();
            for s in &schedules {
                let c = play(&mix, clock, provider, s, 0.0);
                model.keyvault += c.keyvault;
                model.entra += c.entra;
                model.mounts += c.mounts;
            }
            let Provider::Ours { ttl: this_ttl } = provider else {
                continue;
            };
            let flag = format!(
                "--object-cache-ttl={}ms",
                (clock.s(this_ttl) * 1000.0).round() as u64
            );
            let (kv, entra, failed, cache) =
                real_run(args, &fake, &counts, &mix, &schedules, &flag).await?;
            let lookups = model.mounts * u64::from(mix.objects);
            if this_ttl > 0.0 {
                // Every object of every Mount was looked up once; every GET was a miss (misses
                // that joined a GET in flight send none).
                anyhow::ensure!(
                    cache.hits + cache.misses == lookups && cache.misses >= kv as u64,
                    "object cache metrics {cache:?} disagree with {lookups} lookups and {kv} GETs"
                );
            } else {
                anyhow::ensure!(cache.hits + cache.misses == 0, "cache off, yet {cache:?}");
            }
            let dk = rel(kv as f64, model.keyvault as f64);
            let de = rel(entra as f64, model.entra as f64);
            worst = worst.max(dk.abs()).max(de.abs());
            println!(
                "| {} | {} | {} | {} | {} | {:+.1} % | {} | {} | {:+.1} % | {} / {} |",
                driver.name(),
                provider.name(),
                model.mounts,
                model.keyvault,
                kv,
                dk * 100.0,
                model.entra,
                entra,
                de * 100.0,
                cache.hits,
                cache.misses
            );
            anyhow::ensure!(failed == 0, "{failed} Mounts failed");
        }
    }
    println!();
    println!("largest deviation: {:.1} %", worst * 100.0);
    anyhow::ensure!(
        worst <= 0.10,
        "the measured counts differ from the model by more than 10 %"
    );
    Ok(())
}

/// Object-cache counters summed over the nodes' `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
struct CacheCounts {
    hits: u64,
    misses: u64,
}

fn metric(text: &str, name: &str) -> anyhow::Result<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no {name} in /metrics"))
}

fn rel(measured: f64, model: f64) -> f64 {
    if model == 0.0 {
        if measured == 0.0 { 0.0 } else { 1.0 }
    } else {
        (measured - model) / model
    }
}

/// Plays `schedules` (one per node) against fresh provider processes; returns the Key Vault and
/// Entra ID requests the fake saw and the number of failed Mounts.
async fn real_run(
    args: &Args,
    fake: &FakeAzure,
    counts: &FakeCounts,
    mix: &Mix,
    schedules: &[Vec<MountAt>],
    ttl_flag: &str,
) -> anyhow::Result<(usize, usize, usize, CacheCounts)> {
    let mut nodes = Vec::new();
    for _ in 0..schedules.len() {
        nodes.push(
            ProviderProcess::start(
                &args.provider,
                &fake.proxy_url(),
                fake.pki.ca_path(),
                &[ttl_flag, "--mount-timeout=30s"],
            )
            .await?,
        );
    }
    let kv0 = counts.keyvault.load(Ordering::SeqCst);
    let entra0 = counts.entra.load(Ordering::SeqCst);
    let failed = Arc::new(AtomicUsize::new(0));
    let start = tokio::time::Instant::now() + Duration::from_millis(200);
    let mut loops = Vec::new();
    for (node, (proc_, schedule)) in nodes.iter().zip(schedules).enumerate() {
        let client = proc_.client().await?;
        let schedule = schedule.clone();
        let failed = failed.clone();
        let mix = *mix;
        loops.push(tokio::spawn(async move {
            let mut inflight = Vec::new();
            for m in schedule {
                tokio::time::sleep_until(start + Duration::from_secs_f64(m.t)).await;
                let identity = m.pod % mix.identities;
                let id = Identity::Workload {
                    client_id: format!("app-{identity}"),
                    sa_token: format!("sa-n{node}-p{}-e{}", m.pod, m.epoch),
                };
                let objects: Vec<String> = (0..mix.objects)
                    .map(|o| object_yaml(&format!("obj-{identity}-{o}"), "secret"))
                    .collect();
                let req =
                    mount_request(SIM_VAULT, &objects, &id, &format!("pod-n{node}-p{}", m.pod));
                let mut client = client.clone();
                let failed = failed.clone();
                inflight.push(tokio::spawn(async move {
                    if client.mount(req).await.is_err() {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }));
            }
            for t in inflight {
                let _ = t.await;
            }
        }));
    }
    for l in loops {
        l.await?;
    }
    let kv = counts.keyvault.load(Ordering::SeqCst) - kv0;
    let entra = counts.entra.load(Ordering::SeqCst) - entra0;
    let mut cache = CacheCounts::default();
    for n in &nodes {
        let (status, text) = http_get(n.metrics_addr, "/metrics").await?;
        anyhow::ensure!(status == 200, "/metrics answered {status}");
        cache.hits += metric(&text, "rust_azure_provider_object_cache_hits_total")?;
        cache.misses += metric(&text, "rust_azure_provider_object_cache_misses_total")?;
    }
    for n in nodes {
        n.stop();
    }
    Ok((kv, entra, failed.load(Ordering::SeqCst), cache))
}
