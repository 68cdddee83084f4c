//! Load: rounds of 1,000 concurrent Mounts with mixed identities against the fakes through the
//! spawned binary. No Mount may fail; the provider's open file descriptors and RSS are sampled
//! before, at peak and after each round (after a short settle). Idle pooled HTTP connections are
//! expected after a round, so the leak check compares rounds: a leak is growth from one round to
//! the next, not the first round's pool.
//!
//! Prints a `LOAD` line per measurement (run with `--nocapture` to see them).

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test setup failures fail the test"
)]

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::fake_azure::FakeAzure;
use common::fake_keyvault::Access;
use common::reliability::{
    FakeEntra, Identity, client, fake_flags, file, mount_request, object_yaml,
};

const VAULT: &str = "kv-load";
const MOUNTS_PER_ROUND: usize = 1000;
const ROUNDS: usize = 4;
const CHANNELS: usize = 50;

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Clone, Copy, Debug)]
struct Usage {
    rss_kib: u64,
    fds: u64,
}

fn usage(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("proc fd")
        .count() as u64;
    Usage { rss_kib, fds }
}

fn identities() -> Vec<Identity> {
    let mut ids: Vec<Identity> = (0..4)
        .map(|i| Identity::wi(&format!("sa-token-{i}")))
        .collect();
    ids.push(Identity::sp("sp-secret-0"));
    ids.push(Identity::sp("sp-secret-1"));
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_mounts_leave_no_leak() {
    let fake = FakeAzure::start().await;
    let entra = FakeEntra::install(&fake);
    for i in 0..4 {
        entra.principal(&format!("sa-token-{i}"), &format!("kv-token-wi-{i}"));
        fake.keyvault
            .grant(VAULT, &format!("kv-token-wi-{i}"), Access::All);
    }
    for i in 0..2 {
        entra.principal(&format!("sp-secret-{i}"), &format!("kv-token-sp-{i}"));
        fake.keyvault
            .grant(VAULT, &format!("kv-token-sp-{i}"), Access::All);
    }
    for i in 0..4 {
        fake.keyvault.add_secret(
            VAULT,
            &format!("s{i}"),
            "v1",
            &format!("value-{i}"),
            1_700_000_000,
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("rust-azure.sock");
    let mut args = fake_flags(&fake, "60s", &[]);
    args.extend([
        format!("--provider-dir={}", dir.path().display()),
        "--health-addr=127.0.0.1:0".to_owned(),
        "--metrics-addr=127.0.0.1:0".to_owned(),
        "--log-filter=error".to_owned(),
    ]);
    let mut child = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_rust-azure-provider"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    let started = Instant::now();
    while !socket.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "socket not created within 10 s"
        );
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("provider exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut channels = Vec::new();
    for _ in 0..CHANNELS {
        channels.push(client(&socket).await);
    }
    let baseline = usage(pid);
    eprintln!(
        "LOAD baseline: rss {} KiB, fds {}",
        baseline.rss_kib, baseline.fds
    );
    let ids = identities();
    let objects: Vec<String> = (0..4)
        .map(|i| object_yaml(&format!("s{i}"), "secret"))
        .collect();

    let mut after = Vec::new();
    for round in 0..ROUNDS {
        // Peak sampler.
        let stop = Arc::new(AtomicBool::new(false));
        let peak_rss = Arc::new(AtomicU64::new(0));
        let peak_fds = Arc::new(AtomicU64::new(0));
        let sampler = {
            let (stop, peak_rss, peak_fds) = (stop.clone(), peak_rss.clone(), peak_fds.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let u = usage(pid);
                    peak_rss.fetch_max(u.rss_kib, Ordering::SeqCst);
                    peak_fds.fetch_max(u.fds, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            })
        };
        let t0 = Instant::now();
        let mut tasks = Vec::with_capacity(MOUNTS_PER_ROUND);
        for i in 0..MOUNTS_PER_ROUND {
            let mut c = channels[i % CHANNELS].clone();
            let id = ids[i % ids.len()].clone();
            // Each Mount asks for two or more of the four secrets.
            let picked: Vec<String> = objects[..2 + i % 3].to_vec();
            tasks.push(tokio::spawn(async move {
                let resp = c
                    .mount(mount_request(VAULT, &picked, &id, &format!("pod-{i}")))
                    .await;
                (i, picked.len(), resp)
            }));
        }
        let mut errors = Vec::new();
        for t in tasks {
            let (i, n, resp) = t.await.expect("task");
            match resp {
                Ok(r) => {
                    let r = r.into_inner();
                    assert_eq!(r.files.len(), n, "mount {i}");
                    for k in 0..n {
                        assert_eq!(file(&r, &format!("s{k}")), format!("value-{k}").as_bytes());
                    }
                }
                Err(s) => errors.push(format!("mount {i}: {:?} {}", s.code(), s.message())),
            }
        }
        let took = t0.elapsed();
        stop.store(true, Ordering::SeqCst);
        sampler.await.unwrap();
        assert!(
            errors.is_empty(),
            "round {round}: {} failed Mounts, first: {:?}",
            errors.len(),
            errors.first()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        let settled = usage(pid);
        eprintln!(
            "LOAD round {round}: {MOUNTS_PER_ROUND} Mounts in {} ms; peak rss {} KiB, peak fds {}; after 2 s settle rss {} KiB, fds {}",
            took.as_millis(),
            peak_rss.load(Ordering::SeqCst),
            peak_fds.load(Ordering::SeqCst),
            settled.rss_kib,
            settled.fds
        );
        after.push(settled);
    }
    eprintln!(
        "LOAD token requests to Entra ID: {} (6 credentials)",
        entra.requests.load(Ordering::SeqCst)
    );

    // The outbound pool keeps idle connections to the proxy: at most one per concurrent Key
    // Vault request (--max-concurrent-per-vault, 16) plus the token fetches (6 credentials) and a
    // few spares. It may still grow during the first rounds while concurrency peaks differ; a
    // leak shows as growth beyond what the first two rounds reached.
    let pool_bound = 16 + 6 + 26;
    let early_fds = after[0].fds.max(after[1].fds);
    let early_rss = after[0].rss_kib.max(after[1].rss_kib);
    for (round, u) in after.iter().enumerate() {
        assert!(
            u.fds <= baseline.fds + pool_bound,
            "round {round}: {} fds, baseline {} + pool bound {pool_bound}",
            u.fds,
            baseline.fds
        );
        assert!(
            u.rss_kib <= baseline.rss_kib + 64 * 1024,
            "round {round}: RSS {} KiB far above its baseline {} KiB",
            u.rss_kib,
            baseline.rss_kib
        );
    }
    let last = after[ROUNDS - 1];
    assert!(
        last.fds <= early_fds + 6,
        "fds grow across rounds: {early_fds} -> {}",
        last.fds
    );
    // The allocator keeps freed memory for reuse; growth across rounds is what a leak looks like.
    assert!(
        last.rss_kib <= early_rss + 8 * 1024,
        "RSS grows across rounds: {early_rss} KiB -> {} KiB",
        last.rss_kib
    );
    drop(channels);
}
