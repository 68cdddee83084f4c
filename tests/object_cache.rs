//! The object cache (`--object-cache-ttl`): Key Vault responses are shared only between Mounts
//! whose own credential Entra ID accepted for the same principal, never across principals (also
//! under overlapping concurrent Mounts), never because of a token a pod supplies itself; revoked
//! access and changed values show up within one TTL; with the cache off (absent or `0`) the
//! Key Vault and Entra ID request counts are exactly those of the provider without the cache.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test setup failures fail the test"
)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fake_azure::{FakeAzure, FakeResponse, Request};
use common::fake_keyvault::{Access, Kind};
use common::reliability::{
    ConfiguredServer, ENTRA, Identity, entra_token, fake_flags, file, mount_request, object_yaml,
};
use serde_json::json;
use tonic::Code;

const VAULT: &str = "kv-oc";

/// Fake Entra ID that, like the real one, accepts a credential only for the application it
/// belongs to (a federated credential trusts one service account; a secret belongs to one app).
#[derive(Clone, Default)]
struct BindingEntra {
    /// credential -> (client id, access token).
    creds: Arc<Mutex<HashMap<String, (String, String)>>>,
    requests: Arc<AtomicUsize>,
}

impl BindingEntra {
    fn install(fake: &FakeAzure) -> Self {
        let me = Self::default();
        let m = me.clone();
        fake.route_fn(ENTRA, move |r| m.answer(r));
        me
    }

    fn accept(&self, credential: &str, client_id: &str, access_token: &str) {
        self.creds.lock().unwrap().insert(
            credential.to_owned(),
            (client_id.to_owned(), access_token.to_owned()),
        );
    }

    fn answer(&self, r: &Request) -> FakeResponse {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let form = r.form();
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let credential = get("client_secret").or_else(|| get("client_assertion"));
        let client_id = get("client_id").unwrap_or_default();
        let issued = credential
            .and_then(|c| self.creds.lock().unwrap().get(&c).cloned())
            .filter(|(app, _)| *app == client_id);
        match issued {
            Some((_, token)) => entra_token(&token),
            None => FakeResponse::json(
                401,
                json!({"error":"invalid_client","error_description":"AADSTS700213: No matching federated identity record found for presented assertion subject."}).to_string(),
            ),
        }
    }

    fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn wi(app: &str, sa_token: &str) -> Identity {
    Identity::Workload {
        client_id: app.to_owned(),
        sa_token: sa_token.to_owned(),
    }
}

fn sp(app: &str, secret: &str) -> Identity {
    Identity::ServicePrincipal {
        client_id: app.to_owned(),
        secret: secret.to_owned(),
    }
}

/// Principal A: application `app-a`, three pods (three SA tokens, three access tokens), may read
/// `shared`. Principal B: `app-b`, two pods, may read only `b-only`. Principal C: a service
/// principal `app-c` that may read nothing.
struct World {
    fake: FakeAzure,
    entra: BindingEntra,
    a: Vec<Identity>,
    b: Vec<Identity>,
    c: Identity,
}

async fn world() -> World {
    let fake = FakeAzure::start().await;
    let entra = BindingEntra::install(&fake);
    let kv = &fake.keyvault;
    kv.add_secret(VAULT, "shared", "v1", "shared-value", 1_700_000_000);
    kv.add_secret(VAULT, "b-only", "v1", "b-value", 1_700_000_000);
    let mut a = Vec::new();
    for i in 1..=3 {
        entra.accept(&format!("sa-a{i}"), "app-a", &format!("tok-a{i}"));
        kv.grant(
            VAULT,
            &format!("tok-a{i}"),
            Access::Only(vec![(Kind::Secrets, "shared".to_owned())]),
        );
        a.push(wi("app-a", &format!("sa-a{i}")));
    }
    let mut b = Vec::new();
    for i in 1..=2 {
        entra.accept(&format!("sa-b{i}"), "app-b", &format!("tok-b{i}"));
        kv.grant(
            VAULT,
            &format!("tok-b{i}"),
            Access::Only(vec![(Kind::Secrets, "b-only".to_owned())]),
        );
        b.push(wi("app-b", &format!("sa-b{i}")));
    }
    entra.accept("secret-c", "app-c", "tok-c");
    kv.grant(VAULT, "tok-c", Access::Only(vec![]));
    World {
        fake,
        entra,
        a,
        b,
        c: sp("app-c", "secret-c"),
    }
}

type Outcome = Result<Vec<u8>, (Code, String)>;

async fn mount(
    server: &ConfiguredServer,
    vault: &str,
    object: &str,
    id: &Identity,
    pod: &str,
) -> Outcome {
    let mut client = server.client().await;
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

fn assert_denied(out: &Outcome, what: &str) {
    match out {
        Ok(v) => panic!("{what}: got content {:?}", String::from_utf8_lossy(v)),
        Err((code, msg)) => assert_eq!(*code, Code::PermissionDenied, "{what}: {msg}"),
    }
}

fn kv_gets(fake: &FakeAzure, vault: &str) -> usize {
    fake.requests_to(&format!("{vault}.vault.azure.net")).len()
}

fn server(fake: &FakeAzure, ttl: Option<&str>) -> ConfiguredServer {
    let flag = ttl.map(|t| format!("--object-cache-ttl={t}"));
    let extra: Vec<&str> = flag.iter().map(String::as_str).collect();
    ConfiguredServer::start(&fake_flags(fake, "20s", &extra))
}

#[tokio::test]
async fn no_cross_principal_hit_under_concurrency() {
    let w = world().await;
    let server = server(&w.fake, Some("10m"));
    // A vault answering per principal, and only once A's, B's and C's requests for the same URL
    // are all in flight while `hold` is set: if a cached or in-flight response crossed
    // principals, fewer than three requests would arrive and the held round would fail.
    let hold = Arc::new(AtomicBool::new(true));
    let together = Arc::new(tokio::sync::Barrier::new(3));
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let (hold, together, seen) = (hold.clone(), together.clone(), seen.clone());
        w.fake.route_fn("percaller.vault.azure.net", move |r: &Request| {
            let who = r.bearer().unwrap_or("anonymous").to_owned();
            seen.lock().unwrap().push(who.clone());
            let principal = who.trim_start_matches("tok-").chars().next().unwrap_or('?');
            let resp = FakeResponse::json(
                200,
                json!({"value": format!("value-for-{principal}"), "id": "https://percaller.vault.azure.net/secrets/s/v1", "attributes": {"enabled": true}}).to_string(),
            );
            if hold.load(Ordering::SeqCst) {
                resp.with_hold(together.clone())
            } else {
                resp.with_delay(Duration::from_millis(5))
            }
        });
    }
    // Round 0: one pod of each principal, certainly overlapping.
    let (ra, rb, rc) = tokio::join!(
        mount(&server, "percaller", "s", &w.a[0], "pod-a1"),
        mount(&server, "percaller", "s", &w.b[0], "pod-b1"),
        mount(&server, "percaller", "s", &w.c, "pod-c"),
    );
    assert_eq!(ra.unwrap(), b"value-for-a");
    assert_eq!(rb.unwrap(), b"value-for-b");
    assert_eq!(rc.unwrap(), b"value-for-c");
    hold.store(false, Ordering::SeqCst);
    // A and B hold an accepted entry for the per-principal vault, A for `shared`.
    assert_eq!(
        mount(&server, VAULT, "shared", &w.a[0], "pod-a1")
            .await
            .unwrap(),
        b"shared-value"
    );
    let kv_before = kv_gets(&w.fake, VAULT);
    let entra_before = w.entra.count();
    // 180 interleaved concurrent Mounts of every pod of every principal, on both vaults.
    let mut ids: Vec<(char, Identity, String)> = Vec::new();
    for (i, id) in w.a.iter().enumerate() {
        ids.push(('a', id.clone(), format!("pod-a{}", i + 1)));
    }
    for (i, id) in w.b.iter().enumerate() {
        ids.push(('b', id.clone(), format!("pod-b{}", i + 1)));
    }
    ids.push(('c', w.c.clone(), "pod-c".to_owned()));
    let mut tasks = Vec::new();
    for i in 0..180usize {
        let (who, id, pod) = ids[i % ids.len()].clone();
        let path = server.path.clone();
        let (vault, object) = if (i / ids.len()).is_multiple_of(2) {
            (VAULT, "shared")
        } else {
            ("percaller", "s")
        };
        tasks.push(tokio::spawn(async move {
            let mut client = common::reliability::client(&path).await;
            let out: Outcome = client
                .mount(mount_request(
                    vault,
                    &[object_yaml(object, "secret")],
                    &id,
                    &pod,
                ))
                .await
                .map(|r| file(r.get_ref(), object).to_vec())
                .map_err(|s| (s.code(), s.message().to_owned()));
            (i, who, vault, out)
        }));
    }
    let mut denied = 0;
    for t in tasks {
        let (i, who, vault, out) = t.await.unwrap();
        match (vault, who) {
            (VAULT, 'a') => assert_eq!(out.unwrap(), b"shared-value", "mount {i}"),
            (VAULT, _) => {
                assert_denied(&out, &format!("mount {i} of principal {who}"));
                denied += 1;
            }
            _ => assert_eq!(
                String::from_utf8(out.unwrap()).unwrap(),
                format!("value-for-{who}"),
                "mount {i}: content of another principal"
            ),
        }
    }
    // A was served from its cache: only B and C asked Key Vault (concurrent identical denials
    // of one principal may share one request in flight).
    assert_eq!(denied, 90 / ids.len() * 3);
    let kv_after = kv_gets(&w.fake, VAULT);
    assert!(
        (1..=denied).contains(&(kv_after - kv_before)),
        "{kv_before} -> {kv_after}"
    );
    // Denials are never cached: each later Mount asks again and is denied again.
    for id in [&w.b[0], &w.b[1], &w.c, &w.b[0]] {
        assert_denied(
            &mount(&server, VAULT, "shared", id, "pod-later").await,
            "later",
        );
    }
    assert_eq!(kv_gets(&w.fake, VAULT), kv_after + 4);
    // Each pod's credential was accepted once (pods a2, a3, b2 are new): tokens stay per
    // credential even though objects are shared per principal.
    assert_eq!(w.entra.count() - entra_before, 3);
    // The per-principal vault saw each principal at most once for the held round plus once
    // for whatever pod first missed the cache afterwards: no principal ever read another's.
    let seen = seen.lock().unwrap().clone();
    for p in ['a', 'b', 'c'] {
        let n = seen
            .iter()
            .filter(|t| t.starts_with(&format!("tok-{p}")))
            .count();
        assert!((1..=2).contains(&n), "principal {p}: {n} GETs: {seen:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_token_the_pod_supplies_never_reaches_cached_objects() {
    let w = world().await;
    let server = server(&w.fake, Some("10m"));
    assert_eq!(
        mount(&server, VAULT, "shared", &w.a[0], "pod-a1")
            .await
            .unwrap(),
        b"shared-value"
    );
    let kv_before = kv_gets(&w.fake, VAULT);
    // An SPC author supplies a serviceAccount.tokens attribute naming A's application: a forged
    // token (claims of A's service account, no valid signature) and B's real token.
    let forged = concat!(
        "eyJhbGciOiJub25lIn0.",
        "eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDphIiwiYXVkIjpbImFwaTovL0F6dXJlQURUb2tlbkV4Y2hhbmdlIl19."
    );
    for (what, id) in [
        ("forged token", wi("app-a", forged)),
        ("B's token for A's app", wi("app-a", "sa-b1")),
    ] {
        let entra_before = w.entra.count();
        let out = mount(&server, VAULT, "shared", &id, "pod-x").await;
        match out {
            Ok(v) => panic!("{what}: got {:?}", String::from_utf8_lossy(&v)),
            Err((code, msg)) => assert_eq!(code, Code::Unauthenticated, "{what}: {msg}"),
        }
        // It went to Entra ID with its own material and was turned away there.
        assert_eq!(w.entra.count(), entra_before + 1, "{what}");
    }
    assert_eq!(kv_gets(&w.fake, VAULT), kv_before);
    server.stop().await;
}

#[tokio::test]
async fn revoked_access_is_denied_within_one_ttl() {
    let w = world().await;
    let ttl = Duration::from_secs(2);
    let server = server(&w.fake, Some("2s"));
    assert_eq!(
        mount(&server, VAULT, "shared", &w.a[0], "pod-a1")
            .await
            .unwrap(),
        b"shared-value"
    );
    for i in 1..=3 {
        w.fake
            .keyvault
            .grant(VAULT, &format!("tok-a{i}"), Access::Only(vec![]));
    }
    let revoked = tokio::time::Instant::now();
    // Within the TTL the cached value may still be served (the documented trade-off)...
    let _ = mount(&server, VAULT, "shared", &w.a[1], "pod-a2").await;
    // ...but never after it, for any pod of the principal.
    tokio::time::sleep_until(revoked + ttl).await;
    for (i, id) in w.a.iter().enumerate() {
        assert_denied(
            &mount(&server, VAULT, "shared", id, &format!("pod-a{}", i + 1)).await,
            &format!("pod a{} one TTL after the revocation", i + 1),
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn changed_value_appears_within_one_ttl() {
    let w = world().await;
    let ttl = Duration::from_secs(2);
    let server = server(&w.fake, Some("2s"));
    assert_eq!(
        mount(&server, VAULT, "shared", &w.a[0], "pod-a1")
            .await
            .unwrap(),
        b"shared-value"
    );
    w.fake
        .keyvault
        .add_secret(VAULT, "shared", "v2", "rotated-value", 1_800_000_000);
    let changed = tokio::time::Instant::now();
    let early = mount(&server, VAULT, "shared", &w.a[1], "pod-a2")
        .await
        .unwrap();
    assert!(
        early == b"shared-value" || early == b"rotated-value",
        "{early:?}"
    );
    tokio::time::sleep_until(changed + ttl).await;
    for (i, id) in w.a.iter().enumerate() {
        assert_eq!(
            mount(&server, VAULT, "shared", id, &format!("pod-a{}", i + 1))
                .await
                .unwrap(),
            b"rotated-value",
            "pod a{}",
            i + 1
        );
    }
    server.stop().await;
}

/// The request counts of a fixed sequence: three pods of A mounting three objects (one with a
/// version history, so listings count too) four times each, one after another.
async fn counts(ttl: Option<&str>) -> (usize, usize) {
    let w = world().await;
    let kv = &w.fake.keyvault;
    kv.add_secret(VAULT, "shared", "v0", "older-value", 1_600_000_000);
    kv.add_secret(VAULT, "other", "v1", "other-value", 1_700_000_000);
    for i in 1..=3 {
        kv.grant(VAULT, &format!("tok-a{i}"), Access::All);
    }
    let server = server(&w.fake, ttl);
    let objects = [
        object_yaml("shared", "secret"),
        object_yaml("other", "secret"),
        "  - |\n    objectName: shared\n    objectType: secret\n    objectAlias: history\n    objectVersionHistory: 2\n".to_owned(),
    ];
    for round in 0..4 {
        for (i, id) in w.a.iter().enumerate() {
            let mut client = server.client().await;
            let resp = client
                .mount(mount_request(
                    VAULT,
                    &objects,
                    id,
                    &format!("pod-a{}", i + 1),
                ))
                .await
                .unwrap_or_else(|s| panic!("round {round} pod {i}: {s:?}"));
            assert_eq!(file(resp.get_ref(), "shared"), b"shared-value");
        }
    }
    server.stop().await;
    (kv_gets(&w.fake, VAULT), w.entra.count())
}

#[tokio::test]
async fn with_the_cache_off_request_counts_are_exactly_todays() {
    let today = counts(None).await;
    // Per Mount: two latest GETs, one listing, two version GETs; one token per pod.
    assert_eq!(today, (12 * 5, 3));
    assert_eq!(counts(Some("0")).await, today);
    assert_eq!(counts(Some("0s")).await, today);
    // With the cache on, the principal's first Mount fetches; the other 11 reuse it.
    assert_eq!(counts(Some("10m")).await, (5, 3));
}
