//! Key Vault client against the fake Key Vault over real HTTPS (generated CA) through the
//! recording forward proxy.

#![allow(
    clippy::expect_used,
    reason = "test helpers fail the test on setup errors"
)]

mod common;

use std::time::Duration;

use common::fake_azure::{FakeAzure, FakeResponse};
use common::fake_keyvault::{Access, Kind, server_error, slow, testdata, throttled};
use rust_azure_provider::error::ErrorClass;
use rust_azure_provider::http::{HttpClient, HttpConfig};
use rust_azure_provider::keyvault::{KeyVaultClient, ObjectKind, RetryPolicy};
use rust_azure_provider::secret::SecretString;
use tokio::time::Instant;

const VAULT: &str = "myk8skv";
const VAULT_URL: &str = "https://myk8skv.vault.azure.net/";
const TOKEN: &str = "good-token";

fn http_config(fake: &FakeAzure) -> HttpConfig {
    HttpConfig {
        ca_bundle: Some(fake.pki.ca_path().to_path_buf()),
        user_agent_suffix: "kv-tests".into(),
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        proxy_override: Some(fake.proxy_url()),
        no_proxy: Some(String::new()),
    }
}

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_retries: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        per_try_timeout: Duration::from_secs(5),
        max_concurrent_per_vault: 4,
        ..RetryPolicy::default()
    }
}

async fn setup() -> (FakeAzure, KeyVaultClient) {
    let fake = FakeAzure::start().await;
    fake.keyvault.add_vault(VAULT);
    fake.keyvault.grant(VAULT, TOKEN, Access::All);
    let http = HttpClient::new(&http_config(&fake)).expect("http client");
    (fake, KeyVaultClient::new(http, fast_policy()))
}

fn token() -> SecretString {
    SecretString::from(TOKEN)
}

fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

#[tokio::test]
async fn get_secret_latest_and_pinned_through_proxy() {
    let (fake, kv) = setup().await;
    fake.keyvault
        .add_secret(VAULT, "db-password", "v1old", "old-value", 1_000);
    fake.keyvault
        .add_secret(VAULT, "db-password", "v2new", "new-value", 2_000);

    let latest = kv
        .get_secret(VAULT_URL, "db-password", None, &token(), deadline(10))
        .await
        .expect("latest");
    assert_eq!(latest.value.expose(), "new-value");
    assert_eq!(latest.version(), Some("v2new"));
    assert!(!format!("{latest:?}").contains("new-value"));

    let pinned = kv
        .get_secret(
            VAULT_URL,
            "db-password",
            Some("v1old"),
            &token(),
            deadline(10),
        )
        .await
        .expect("pinned");
    assert_eq!(pinned.value.expose(), "old-value");

    // Wire shape.
    let reqs = fake.requests_to("myk8skv.vault.azure.net");
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].path, "/secrets/db-password/");
    assert_eq!(reqs[0].query.as_deref(), Some("api-version=7.4"));
    assert_eq!(reqs[1].path, "/secrets/db-password/v1old");
    assert_eq!(reqs[0].header("authorization"), Some("Bearer <redacted>"));
    let ua = reqs[0].header("user-agent").expect("user agent");
    assert!(
        ua.starts_with("rust-azure-provider/") && ua.ends_with(" kv-tests"),
        "{ua}"
    );
    assert!(reqs.iter().all(|r| r.tls));

    // The only way to reach the fake is the proxy: the host name does not resolve here.
    let records = fake.proxy.records();
    assert!(!records.is_empty());
    assert!(
        records
            .iter()
            .all(|r| r.method == "CONNECT" && r.target == "myk8skv.vault.azure.net:443"),
        "{records:?}"
    );
}

#[tokio::test]
async fn get_key_and_certificate_from_recorded_bodies() {
    let (fake, kv) = setup().await;
    fake.keyvault
        .add_testdata(VAULT, Kind::Keys, "rsa", "k1", 10, "key-rsa.json");
    fake.keyvault.add_testdata(
        VAULT,
        Kind::Certificates,
        "web",
        "c1",
        10,
        "certificate-rsa.json",
    );
    fake.keyvault.add_testdata(
        VAULT,
        Kind::Secrets,
        "web",
        "c1",
        10,
        "secret-cert-backed-pem-rsa.json",
    );
    let key = kv
        .get_key(VAULT_URL, "rsa", None, &token(), deadline(10))
        .await
        .expect("key");
    assert_eq!(key.key.kty, "RSA");
    let cert = kv
        .get_certificate(VAULT_URL, "web", Some("c1"), &token(), deadline(10))
        .await
        .expect("cert");
    assert!(!cert.cer.is_empty());
    let secret = kv
        .get_secret(VAULT_URL, "web", None, &token(), deadline(10))
        .await
        .expect("cert-backed secret");
    assert_eq!(
        secret.content_type.as_deref(),
        Some("application/x-pem-file")
    );
    assert_eq!(
        fake.requests_to("myk8skv.vault.azure.net")
            .iter()
            .map(|r| r.path.clone())
            .collect::<Vec<_>>(),
        vec!["/keys/rsa/", "/certificates/web/c1", "/secrets/web/"]
    );
}

#[tokio::test]
async fn names_are_percent_encoded() {
    let (fake, kv) = setup().await;
    fake.keyvault.add_secret(VAULT, "we ird", "v1", "x", 1);
    let s = kv
        .get_secret(VAULT_URL, "we ird", None, &token(), deadline(10))
        .await
        .expect("secret");
    assert_eq!(s.value.expose(), "x");
    assert_eq!(fake.requests()[0].path, "/secrets/we%20ird/");
}

#[tokio::test]
async fn list_versions_follows_next_link_pages() {
    let (fake, kv) = setup().await;
    for i in 0..7 {
        fake.keyvault
            .add_secret(VAULT, "rotated", &format!("ver{i}"), "v", 100 + i);
    }
    fake.keyvault.set_page_size(3);
    let items = kv
        .list_versions(
            VAULT_URL,
            ObjectKind::Secret,
            "rotated",
            &token(),
            deadline(10),
        )
        .await
        .expect("list");
    assert_eq!(items.len(), 7);
    assert_eq!(items[6].version(), Some("ver6"));
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3, "three pages");
    assert_eq!(reqs[0].path, "/secrets/rotated/versions");
    assert!(
        reqs[1]
            .query
            .as_deref()
            .unwrap_or_default()
            .contains("$skiptoken=3")
    );

    // Keys list with `kid`.
    fake.keyvault
        .add_testdata(VAULT, Kind::Keys, "k", "k1", 1, "key-rsa.json");
    let items = kv
        .list_versions(VAULT_URL, ObjectKind::Key, "k", &token(), deadline(10))
        .await
        .expect("keys list");
    assert_eq!(items[0].version(), Some("k1"));
}

#[tokio::test]
async fn next_link_to_another_host_is_refused() {
    let (fake, kv) = setup().await;
    for i in 0..3 {
        fake.keyvault
            .add_secret(VAULT, "s", &format!("v{i}"), "v", i);
    }
    fake.keyvault.set_page_size(1);
    fake.keyvault.set_next_link_host("evil.example");
    let err = kv
        .list_versions(VAULT_URL, ObjectKind::Secret, "s", &token(), deadline(10))
        .await
        .expect_err("foreign nextLink");
    assert_eq!(err.code(), "keyvault_foreign_next_link");
    assert!(err.to_string().contains("evil.example"), "{err}");
    assert!(!fake.proxy.hosts().contains(&"evil.example".to_owned()));
}

#[tokio::test]
async fn not_found_message_is_actionable() {
    let (_fake, kv) = setup().await;
    let err = kv
        .get_secret(VAULT_URL, "db-password", None, &token(), deadline(10))
        .await
        .expect_err("404");
    assert_eq!(err.class(), ErrorClass::NotFound);
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.service_code(), Some("SecretNotFound"));
    let msg = err.to_string();
    assert!(
        msg.starts_with("secret/db-password (latest): Key Vault returned 404 SecretNotFound: A secret with (name/id) db-password was not found in this key vault"),
        "{msg}"
    );
    assert!(
        msg.ends_with(
            "Check objectName and objectVersion, and that the secret exists in vault myk8skv.vault.azure.net"
        ),
        "{msg}"
    );
}

#[tokio::test]
async fn recorded_error_bodies_map_to_classes() {
    let (fake, kv) = setup().await;
    fake.keyvault.add_secret(VAULT, "s", "v1", "x", 1);
    for (status, file, class, code) in [
        (
            404,
            "error-secret-not-found.json",
            ErrorClass::NotFound,
            "SecretNotFound",
        ),
        (
            404,
            "error-secret-not-found-api-7.0.json",
            ErrorClass::NotFound,
            "SecretNotFound",
        ),
        (
            404,
            "error-key-not-found.json",
            ErrorClass::NotFound,
            "KeyNotFound",
        ),
        (
            404,
            "error-certificate-not-found.json",
            ErrorClass::NotFound,
            "CertificateNotFound",
        ),
        (
            403,
            "error-forbidden-secret-disabled.json",
            ErrorClass::PermissionDenied,
            "Forbidden",
        ),
        (
            401,
            "error-unauthorized-challenge.json",
            ErrorClass::Unauthenticated,
            "Unauthorized",
        ),
    ] {
        fake.keyvault
            .push_fault(None, FakeResponse::json(status, testdata(file)));
        let err = kv
            .get_secret(VAULT_URL, "s", Some("v1"), &token(), deadline(10))
            .await
            .expect_err(file);
        assert_eq!(err.class(), class, "{file}: {err}");
        assert_eq!(err.service_code(), Some(code), "{file}");
        assert!(err.to_string().starts_with("secret/s@v1: "), "{err}");
    }
    // Disabled version: hint about enabling it.
    fake.keyvault.push_fault(
        None,
        FakeResponse::json(403, testdata("error-forbidden-secret-disabled.json")),
    );
    let err = kv
        .get_secret(VAULT_URL, "s", Some("v1"), &token(), deadline(10))
        .await
        .expect_err("disabled");
    assert!(err.to_string().contains("SecretDisabled"), "{err}");
}

#[tokio::test]
async fn access_control_by_token() {
    let (fake, kv) = setup().await;
    fake.keyvault.add_secret(VAULT, "allowed", "v1", "a", 1);
    fake.keyvault.add_secret(VAULT, "other", "v1", "b", 1);
    fake.keyvault.grant(
        VAULT,
        "narrow",
        Access::Only(vec![(Kind::Secrets, "allowed".into())]),
    );
    let narrow = SecretString::from("narrow");
    kv.get_secret(VAULT_URL, "allowed", None, &narrow, deadline(10))
        .await
        .expect("allowed");
    let err = kv
        .get_secret(VAULT_URL, "other", None, &narrow, deadline(10))
        .await
        .expect_err("forbidden");
    assert_eq!(err.class(), ErrorClass::PermissionDenied);
    assert!(
        err.to_string().contains("'get' permission on secrets"),
        "{err}"
    );

    let err = kv
        .get_secret(
            VAULT_URL,
            "other",
            None,
            &SecretString::from("bogus-token-value"),
            deadline(10),
        )
        .await
        .expect_err("unauthenticated");
    assert_eq!(err.class(), ErrorClass::Unauthenticated);
    let msg = err.to_string();
    assert!(msg.contains("The access token is invalid"), "{msg}");
    assert!(!msg.contains("bogus-token-value"), "{msg}");
}

#[tokio::test]
async fn throttled_then_success_honours_retry_after() {
    let (fake, kv) = setup().await;
    fake.keyvault.add_secret(VAULT, "s", "v1", "x", 1);
    fake.keyvault.push_fault(None, throttled(1));
    let start = std::time::Instant::now();
    let s = kv
        .get_secret(VAULT_URL, "s", None, &token(), deadline(10))
        .await
        .expect("after retry");
    assert_eq!(s.value.expose(), "x");
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "{:?}",
        start.elapsed()
    );
    let stats = kv.stats().snapshot();
    assert_eq!(stats.retries, 1);
    assert_eq!(stats.throttled_responses, 1);
    assert_eq!(stats.attempts, 2);
}

#[tokio::test]
async fn throttling_longer_than_deadline_fails_at_once() {
    let (fake, kv) = setup().await;
    fake.keyvault.add_secret(VAULT, "s", "v1", "x", 1);
    fake.keyvault.push_fault(None, throttled(30));
    let start = std::time::Instant::now();
    let err = kv
        .get_secret(VAULT_URL, "s", None, &token(), deadline(5))
        .await
        .expect_err("throttled");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "did not fail fast (Retry-After is 30 s)"
    );
    assert_eq!(err.class(), ErrorClass::ResourceExhausted);
    assert!(err.to_string().contains("30s"), "{err}");

    // The throttle gate now holds other callers for this vault too, without adding load.
    let before = fake.requests().len();
    let err = kv
        .get_secret(VAULT_URL, "s", None, &token(), deadline(5))
        .await
        .expect_err("gated");
    assert_eq!(err.class(), ErrorClass::ResourceExhausted);
    assert_eq!(fake.requests().len(), before, "gate must not send requests");
    assert!(kv.stats().snapshot().throttle_gate_waits >= 1);
}

#[tokio::test]
async fn server_error_storm_fails_within_deadline() {
    let (fake, _) = setup().await;
    fake.keyvault.add_secret(VAULT, "s", "v1", "x", 1);
    fake.keyvault.push_faults(None, vec![server_error(503); 50]);
    let policy = RetryPolicy {
        max_retries: 100,
        base_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(1),
        ..fast_policy()
    };
    let kv = KeyVaultClient::new(HttpClient::new(&http_config(&fake)).expect("http"), policy);
    let start = std::time::Instant::now();
    let err = kv
        .get_secret(VAULT_URL, "s", None, &token(), deadline(2))
        .await
        .expect_err("storm");
    // The deadline (2 s) ends the storm; 100 retries of up to 1 s would take far longer. The
    // margin is for a loaded CI machine, not a performance claim.
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(err.class(), ErrorClass::DeadlineExceeded, "{err}");
    assert!(fake.requests().len() >= 2, "retried");

    // With a small retry budget the last status is reported.
    let (fake, kv) = setup().await;
    fake.keyvault.add_secret(VAULT, "s", "v1", "x", 1);
    fake.keyvault.push_faults(None, vec![server_error(500); 10]);
    let err = kv
        .get_secret(VAULT_URL, "s", None, &token(), deadline(10))
        .await
        .expect_err("500s");
    assert_eq!(err.code(), "keyvault_retries_exhausted");
    assert!(err.to_string().contains("after 5 attempts"), "{err}");
    assert_eq!(fake.requests().len(), 5);
}

#[tokio::test]
async fn slow_response_past_deadline_is_deadline_exceeded() {
    let (fake, kv) = setup().await;
    fake.keyvault.add_secret(VAULT, "s", "v1", "x", 1);
    fake.keyvault.push_fault(None, slow(Duration::from_secs(5)));
    let start = std::time::Instant::now();
    let err = kv
        .get_secret(
            VAULT_URL,
            "s",
            None,
            &token(),
            Instant::now() + Duration::from_millis(800),
        )
        .await
        .expect_err("slow");
    // The answer would take 5 s; the deadline is 0.8 s.
    assert!(start.elapsed() < Duration::from_secs(4));
    assert_eq!(err.class(), ErrorClass::DeadlineExceeded, "{err}");
}

#[tokio::test]
async fn connection_reset_is_retried() {
    let (fake, kv) = setup().await;
    fake.keyvault.add_secret(VAULT, "s", "v1", "x", 1);
    fake.keyvault
        .push_faults(None, vec![FakeResponse::reset(), FakeResponse::reset()]);
    let s = kv
        .get_secret(VAULT_URL, "s", None, &token(), deadline(10))
        .await
        .expect("retried after resets");
    assert_eq!(s.value.expose(), "x");
    assert_eq!(fake.requests().len(), 3);
    assert!(kv.stats().snapshot().retries >= 2);
}

#[tokio::test]
async fn without_ca_bundle_tls_fails_unavailable() {
    let (fake, _) = setup().await;
    fake.keyvault.add_secret(VAULT, "s", "v1", "x", 1);
    let http = HttpClient::new(&HttpConfig {
        ca_bundle: None,
        ..http_config(&fake)
    })
    .expect("http");
    let kv = KeyVaultClient::new(http, fast_policy());
    let err = kv
        .get_secret(VAULT_URL, "s", None, &token(), deadline(10))
        .await
        .expect_err("untrusted");
    assert_eq!(err.class(), ErrorClass::Unavailable, "{err}");
    assert_eq!(err.code(), "keyvault_tls", "{err}");
    assert!(err.to_string().contains("--ca-bundle"), "{err}");
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn proxy_refusing_the_host_is_unavailable() {
    let (fake, kv) = setup().await;
    fake.proxy.make_unresolvable("nokv.vault.azure.net");
    let err = kv
        .get_secret(
            "https://nokv.vault.azure.net/",
            "s",
            None,
            &token(),
            deadline(10),
        )
        .await
        .expect_err("proxy 502");
    assert_eq!(err.class(), ErrorClass::Unavailable, "{err}");
    assert!(err.to_string().contains("nokv.vault.azure.net"), "{err}");
}

#[tokio::test]
async fn response_body_limit() {
    let (fake, _) = setup().await;
    fake.keyvault
        .add_secret(VAULT, "big", "v1", &"x".repeat(64 * 1024), 1);
    let kv = KeyVaultClient::new(
        HttpClient::new(&http_config(&fake)).expect("http"),
        RetryPolicy {
            max_body_bytes: 16 * 1024,
            ..fast_policy()
        },
    );
    let err = kv
        .get_secret(VAULT_URL, "big", None, &token(), deadline(10))
        .await
        .expect_err("too large");
    assert_eq!(err.class(), ErrorClass::ResourceExhausted);
    assert_eq!(err.code(), "keyvault_response_too_large");
}

/// NO_PROXY with the explicit proxy: hosts on the list go direct, others through the proxy.
#[tokio::test]
async fn no_proxy_list_bypasses_proxy() {
    let fake = FakeAzure::start().await;
    fake.route_fn("127.0.0.1", |_| FakeResponse::json(200, "{}"));
    let http = HttpClient::new(&HttpConfig {
        no_proxy: Some("127.0.0.1,localhost".into()),
        ..http_config(&fake)
    })
    .expect("http");
    let resp = http
        .client()
        .get(format!(
            "https://127.0.0.1:{}/direct",
            fake.https_addr.port()
        ))
        .send()
        .await
        .expect("direct request");
    assert_eq!(resp.status(), 200);
    assert!(
        fake.proxy.records().is_empty(),
        "{:?}",
        fake.proxy.records()
    );
    assert_eq!(fake.requests()[0].path, "/direct");
}

/// Loopback never goes through the explicit proxy, even with an empty no-proxy list (as Go's
/// `ProxyFromEnvironment` decides), while every other host does.
#[tokio::test]
async fn loopback_bypasses_the_proxy_whatever_the_no_proxy_list() {
    let fake = FakeAzure::start().await;
    fake.route_fn("127.0.0.1", |_| FakeResponse::json(200, "{}"));
    fake.route_fn("localhost", |_| FakeResponse::json(200, "{}"));
    let http = HttpClient::new(&HttpConfig {
        no_proxy: Some(String::new()),
        ..http_config(&fake)
    })
    .expect("http");
    let port = fake.https_addr.port();
    for url in [
        format!("https://127.0.0.1:{port}/ip"),
        format!("https://localhost:{port}/name"),
    ] {
        let resp = http.client().get(&url).send().await.expect(&url);
        assert_eq!(resp.status(), 200, "{url}");
    }
    assert!(
        fake.proxy.records().is_empty(),
        "loopback went through the proxy: {:?}",
        fake.proxy.records()
    );
    assert_eq!(fake.requests_to("127.0.0.1").len(), 1);
    assert_eq!(fake.requests_to("localhost").len(), 1);
}

/// The environment proxy variables (no explicit proxy): a child process of this test binary gets
/// `HTTPS_PROXY` and a `NO_PROXY` that does not list loopback (the test process's own
/// environment is never changed). Key Vault goes through the proxy, loopback directly.
#[tokio::test]
async fn environment_proxy_variables_are_honoured() {
    let fake = FakeAzure::start().await;
    fake.keyvault.add_vault("envkv");
    fake.keyvault.grant("envkv", TOKEN, Access::All);
    fake.keyvault
        .add_secret("envkv", "s", "v1", "from-env-proxy", 1);
    fake.route_fn("127.0.0.1", |_| FakeResponse::json(200, "{}"));
    fake.route_fn("localhost", |_| FakeResponse::json(200, "{}"));

    let exe = std::env::current_exe().expect("test exe");
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "--exact",
        "env_proxy_child",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env_remove("https_proxy")
    .env_remove("http_proxy")
    .env_remove("no_proxy")
    .env_remove("ALL_PROXY")
    .env_remove("all_proxy")
    .env("HTTPS_PROXY", fake.proxy_url())
    .env("HTTP_PROXY", fake.proxy_url())
    .env("NO_PROXY", "unrelated.example")
    .env("KV_TEST_CHILD_CA", fake.pki.ca_path())
    .env(
        "KV_TEST_CHILD_DIRECT_PORT",
        fake.https_addr.port().to_string(),
    );
    // The fakes run on this runtime: wait for the child off-thread.
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("spawn child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "child did not run: {stdout}");
    let hosts = fake.proxy.hosts();
    assert!(
        hosts.contains(&"envkv.vault.azure.net".to_owned()),
        "{hosts:?}"
    );
    assert!(!hosts.contains(&"127.0.0.1".to_owned()), "{hosts:?}");
    assert!(!hosts.contains(&"localhost".to_owned()), "{hosts:?}");
    assert_eq!(fake.requests_to("127.0.0.1").len(), 1);
    assert_eq!(fake.requests_to("localhost").len(), 1);
}

/// Run only by `environment_proxy_variables_are_honoured` in a child process.
#[tokio::test]
#[ignore = "helper: run in a child process by environment_proxy_variables_are_honoured"]
async fn env_proxy_child() {
    let ca = std::env::var("KV_TEST_CHILD_CA")
        .expect("run via environment_proxy_variables_are_honoured");
    let port = std::env::var("KV_TEST_CHILD_DIRECT_PORT").expect("direct port");
    let http = HttpClient::new(&HttpConfig {
        ca_bundle: Some(ca.into()),
        ..HttpConfig::default()
    })
    .expect("http");
    let kv = KeyVaultClient::new(http.clone(), fast_policy());
    let s = kv
        .get_secret(
            "https://envkv.vault.azure.net/",
            "s",
            None,
            &token(),
            deadline(10),
        )
        .await
        .expect("through HTTPS_PROXY");
    assert_eq!(s.value.expose(), "from-env-proxy");
    let resp = http
        .client()
        .get(format!("https://127.0.0.1:{port}/direct"))
        .send()
        .await
        .expect("direct: loopback is never proxied");
    assert_eq!(resp.status(), 200);
    let resp = http
        .client()
        .get(format!("https://localhost:{port}/direct"))
        .send()
        .await
        .expect("direct: localhost is never proxied");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn identical_concurrent_gets_are_coalesced_per_token() {
    let (fake, kv) = setup().await;
    fake.keyvault.grant(VAULT, "other-token", Access::All);
    fake.keyvault.add_secret(
        VAULT,
        "shared",
        "0123456789abcdef0123456789abcdef",
        "same-value",
        1_000,
    );
    // The leader's GET and the other token's GET are each answered only once both are in flight
    // (a barrier, not a delay), and the other token asks only after the nine identical callers
    // have joined the leader: the overlap is certain, not a matter of timing.
    let both = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let body = r#"{"value":"same-value","id":"https://myk8skv.vault.azure.net/secrets/shared/0123456789abcdef0123456789abcdef"}"#;
    for _ in 0..2 {
        fake.keyvault.push_fault(
            Some("/secrets/shared"),
            FakeResponse::json(200, body).with_hold(both.clone()),
        );
    }
    let same: Vec<_> = (0..10)
        .map(|_| {
            let kv = kv.clone();
            tokio::spawn(async move {
                kv.get_secret(VAULT_URL, "shared", None, &token(), deadline(10))
                    .await
            })
        })
        .collect();
    let joined = Instant::now() + Duration::from_secs(10);
    while kv.stats().snapshot().coalesced < 9 {
        assert!(Instant::now() < joined, "the identical GETs never joined");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let other = kv
        .get_secret(
            VAULT_URL,
            "shared",
            None,
            &SecretString::from("other-token"),
            deadline(10),
        )
        .await
        .expect("other token");
    assert_eq!(other.value.expose(), "same-value");
    for h in same {
        let b = h.await.unwrap().expect("coalesced get");
        assert_eq!(b.value.expose(), "same-value");
    }
    // Ten identical requests made one GET; the other token made its own.
    assert_eq!(fake.requests_to("myk8skv.vault.azure.net").len(), 2);
    assert_eq!(kv.stats().snapshot().coalesced, 9);
    // Nothing stays in flight: a later request goes to Key Vault again.
    kv.get_secret(VAULT_URL, "shared", None, &token(), deadline(10))
        .await
        .expect("later get");
    assert_eq!(fake.requests_to("myk8skv.vault.azure.net").len(), 3);
}

/// The fake refuses a token issued for another cloud's Key Vault resource, as the real service
/// does (AKV10022): the sovereign-cloud end-to-end test relies on it.
#[tokio::test]
async fn a_token_for_another_cloud_is_refused() {
    let (fake, kv) = setup().await;
    fake.keyvault.add_secret(VAULT, "s", "v1", "cloud-value", 1);
    let gov = "https://myk8skv.vault.usgovcloudapi.net/";
    let err = kv
        .get_secret(gov, "s", None, &token(), deadline(10))
        .await
        .expect_err("a public-cloud token on a US Government vault");
    assert_eq!(err.class(), ErrorClass::Unauthenticated, "{err}");
    fake.keyvault.grant_for(
        VAULT,
        "gov-token",
        Access::All,
        "https://vault.usgovcloudapi.net",
    );
    let gov_token = SecretString::from("gov-token");
    let ok = kv
        .get_secret(gov, "s", None, &gov_token, deadline(10))
        .await
        .expect("a US Government token on a US Government vault");
    assert_eq!(ok.value.expose(), "cloud-value");
    let err = kv
        .get_secret(VAULT_URL, "s", None, &gov_token, deadline(10))
        .await
        .expect_err("a US Government token on a public vault");
    assert_eq!(err.class(), ErrorClass::Unauthenticated, "{err}");
}
