//! Isolation between workloads with different credentials: tokens are cached per credential and
//! Key Vault responses are never shared across access tokens, also under many interleaved
//! concurrent Mounts of the same vault and object; a workload without access is denied even
//! right after (and while) another workload fetches the same object.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test setup failures fail the test"
)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::fake_azure::{FakeAzure, FakeResponse};
use common::fake_keyvault::{Access, Kind};
use common::reliability::{
    ConfiguredServer, FakeEntra, Identity, fake_flags, file, mount_request, object_yaml,
};
use serde_json::json;
use tonic::Code;

const VAULT: &str = "kv-iso";

/// Principals: A (workload identity) may read `shared`; B (workload identity) only `b-only`;
/// C (service principal) nothing.
struct World {
    _log_scan: common::log_capture::ScanOnDrop,
    fake: FakeAzure,
    entra: FakeEntra,
    server: ConfiguredServer,
}

fn a() -> Identity {
    Identity::wi("sa-token-pod-a")
}

fn b() -> Identity {
    Identity::wi("sa-token-pod-b")
}

fn c() -> Identity {
    Identity::sp("client-secret-c")
}

async fn world() -> World {
    let fake = FakeAzure::start().await;
    // Every isolation case ends by scanning the provider's trace-level log for the principals'
    // credentials and tokens and every value a principal may read.
    let stored = fake.keyvault.clone();
    let log_scan = common::log_capture::ScanOnDrop::new(move || {
        let mut sensitive: Vec<String> = [
            "sa-token-pod-a",
            "sa-token-pod-b",
            "client-secret-c",
            "token-of-a",
            "token-of-b",
            "token-of-c",
            "a-only-value",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        sensitive.extend(stored.stored_values());
        sensitive
    });
    let entra = FakeEntra::install(&fake);
    entra.principal("sa-token-pod-a", "token-of-a");
    entra.principal("sa-token-pod-b", "token-of-b");
    entra.principal("client-secret-c", "token-of-c");
    let kv = &fake.keyvault;
    kv.add_secret(VAULT, "shared", "v1", "shared-value", 1_700_000_000);
    kv.add_secret(VAULT, "b-only", "v1", "b-value", 1_700_000_000);
    kv.grant(
        VAULT,
        "token-of-a",
        Access::Only(vec![(Kind::Secrets, "shared".to_owned())]),
    );
    kv.grant(
        VAULT,
        "token-of-b",
        Access::Only(vec![(Kind::Secrets, "b-only".to_owned())]),
    );
    kv.grant(VAULT, "token-of-c", Access::Only(vec![]));
    // Per-token content on a second vault: a response shared across tokens would show up as a
    // value carrying another principal's name. The delay keeps requests in flight together so
    // coalescing has every chance to (wrongly) merge them.
    fake.route_fn("percaller.vault.azure.net", |r| {
        let who = r.bearer().unwrap_or("anonymous").to_owned();
        FakeResponse::json(
            200,
            json!({"value": format!("value-for-{who}"), "id": "https://percaller.vault.azure.net/secrets/s/v1", "attributes": {"enabled": true}}).to_string(),
        )
        .with_delay(Duration::from_millis(30))
    });
    let server = ConfiguredServer::start(&fake_flags(&fake, "20s", &[]));
    World {
        _log_scan: log_scan,
        fake,
        entra,
        server,
    }
}

async fn mount_one(
    w: &World,
    vault: &str,
    object: &str,
    id: &Identity,
    pod: &str,
) -> Result<Vec<u8>, (Code, String)> {
    let mut client = w.server.client().await;
    client
        .mount(mount_request(
            vault,
            &[object_yaml(object, "secret")],
            id,
            pod,
        ))
        .await
        .map(|r| file(r.get_ref(), object).to_vec())
        .map_err(|s| (s.code(), s.message().to_owned()))
}

fn assert_denied(out: &Result<Vec<u8>, (Code, String)>, what: &str) {
    match out {
        Ok(v) => panic!("{what}: got content {:?}", String::from_utf8_lossy(v)),
        Err((code, msg)) => {
            assert_eq!(*code, Code::PermissionDenied, "{what}: {msg}");
            assert!(msg.contains("get permission"), "{what}: {msg}");
        }
    }
}

#[tokio::test]
async fn denied_right_after_another_workload_fetched() {
    let w = world().await;
    assert_eq!(
        mount_one(&w, VAULT, "shared", &a(), "pod-a").await.unwrap(),
        b"shared-value"
    );
    assert_denied(
        &mount_one(&w, VAULT, "shared", &b(), "pod-b").await,
        "B right after A",
    );
    assert_denied(
        &mount_one(&w, VAULT, "shared", &c(), "pod-c").await,
        "C right after A",
    );
    assert_eq!(
        mount_one(&w, VAULT, "b-only", &b(), "pod-b").await.unwrap(),
        b"b-value"
    );
    assert_denied(
        &mount_one(&w, VAULT, "b-only", &a(), "pod-a").await,
        "A right after B",
    );
    // The cached tokens stay per credential.
    assert_eq!(
        mount_one(&w, VAULT, "shared", &a(), "pod-a").await.unwrap(),
        b"shared-value"
    );
    w.server.stop().await;
}

#[tokio::test]
async fn concurrent_interleaved_mounts_keep_each_principal_view() {
    let w = world().await;
    let ids = [a(), b(), c()];
    let mut tasks = Vec::new();
    for i in 0..240usize {
        let id = ids[i % 3].clone();
        let path = w.server.path.clone();
        // Alternate vaults so the same client connection mixes both kinds of requests.
        let vault = if i % 2 == 0 { VAULT } else { "percaller" };
        let object = if vault == VAULT { "shared" } else { "s" };
        tasks.push(tokio::spawn(async move {
            let mut client = common::reliability::client(&path).await;
            let out = client
                .mount(mount_request(
                    vault,
                    &[object_yaml(object, "secret")],
                    &id,
                    &format!("pod-{i}"),
                ))
                .await
                .map(|r| file(r.get_ref(), object).to_vec())
                .map_err(|s| (s.code(), s.message().to_owned()));
            (i, vault, out)
        }));
    }
    let mut ok = [0usize; 3];
    for t in tasks {
        let (i, vault, out) = t.await.expect("task");
        let who = i % 3;
        let token = ["token-of-a", "token-of-b", "token-of-c"][who];
        match (vault, who) {
            (VAULT, 0) => assert_eq!(out.as_deref().unwrap(), b"shared-value", "mount {i}"),
            (VAULT, _) => assert_denied(&out, &format!("mount {i} (principal {who})")),
            (_, _) => assert_eq!(
                String::from_utf8(out.unwrap()).unwrap(),
                format!("value-for-{token}"),
                "mount {i}: content of another principal"
            ),
        }
        ok[who] += 1;
    }
    assert_eq!(ok, [80, 80, 80]);
    // One token request per credential: the cache and its single flight are per credential.
    assert_eq!(w.entra.requests.load(Ordering::SeqCst), 3);
    // Every Key Vault request carried the caller's own token (the log redacts it, so check
    // counts per vault instead): the per-caller vault saw requests from all three principals.
    assert!(!w.fake.requests_to("percaller.vault.azure.net").is_empty());
    w.server.stop().await;
}

#[tokio::test]
async fn denied_while_another_workload_fetches_concurrently() {
    let w = world().await;
    // A vault that lets only A read and answers only once A's, B's and C's requests for the same
    // URL are all in flight (a barrier, not a delay: the overlap is certain, and if coalescing
    // across tokens merged them the held answer would fail the round after HOLD_LIMIT instead).
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let together = std::sync::Arc::new(tokio::sync::Barrier::new(3));
    w.fake.route_fn("slow.vault.azure.net", move |r| {
        let who = r.bearer().unwrap_or_default().to_owned();
        s.lock().unwrap().push(who.clone());
        let resp = if who == "token-of-a" {
            FakeResponse::json(
                200,
                json!({"value":"a-only-value","id":"https://slow.vault.azure.net/secrets/s/v1","attributes":{"enabled":true}}).to_string(),
            )
        } else {
            FakeResponse::json(
                403,
                json!({"error":{"code":"Forbidden","message":"The user, group or application does not have secrets get permission on key vault 'slow'.","innererror":{"code":"AccessDenied"}}}).to_string(),
            )
        };
        resp.with_hold(together.clone())
    });
    // Warm the tokens so the three fetches really overlap.
    for (id, pod) in [(a(), "pod-a"), (b(), "pod-b"), (c(), "pod-c")] {
        let _ = mount_one(&w, VAULT, "b-only", &id, pod).await;
    }
    seen.lock().unwrap().clear();
    let (id_a, id_b, id_c) = (a(), b(), c());
    for round in 0..5 {
        let (ra, rb, rc) = tokio::join!(
            mount_one(&w, "slow", "s", &id_a, "pod-a"),
            mount_one(&w, "slow", "s", &id_b, "pod-b"),
            mount_one(&w, "slow", "s", &id_c, "pod-c"),
        );
        assert_eq!(ra.unwrap(), b"a-only-value", "round {round}");
        assert_denied(&rb, &format!("B while A fetches, round {round}"));
        assert_denied(&rc, &format!("C while A fetches, round {round}"));
    }
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["token-of-a", "token-of-b", "token-of-c"]);
    w.server.stop().await;
}
