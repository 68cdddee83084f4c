//! Fault injection through the real server: Key Vault, Entra ID, IMDS and NMI misbehave (throttling,
//! 5xx storms, slow answers, connection resets mid-body, truncated or malformed JSON, wrong content
//! types, oversized bodies, garbage tokens). Every Mount ends in success after retries or in a
//! clear gRPC error within `--mount-timeout` (plus a small slack), and the same server then
//! serves the next Mount.
//!
//! Each case prints a `FAULT <case>: <outcome> in <ms>` line (run with `--nocapture` to see them).

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test setup failures fail the test"
)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fake_azure::{FakeAzure, FakeResponse, Handler, Request};
use common::fake_keyvault::{Access, server_error, throttled};
use common::reliability::{
    ConfiguredServer, ENTRA, IMDS, Identity, NMI, entra_token, fake_flags, file, imds_token,
    mount_request, nmi_token, object_yaml,
};
use tonic::Code;

const VAULT: &str = "kv-faults";
const KV_HOST: &str = "*.vault.azure.net";
const SP_SECRET: &str = "sp-secret-value";
const TOKEN: &str = "access-token-sp";
const MOUNT_TIMEOUT: Duration = Duration::from_secs(5);
/// Scheduling and connection set-up on a loaded 2-core machine (generous: the bound is about
/// the deadline being kept, not speed).
const SLACK: Duration = Duration::from_secs(3);

/// A handler that answers a scripted fault while one is set and otherwise delegates.
#[derive(Clone)]
struct Switch {
    fault: Arc<Mutex<Option<FakeResponse>>>,
}

impl Switch {
    fn install(fake: &FakeAzure, host: &str, normal: Handler) -> Self {
        let me = Self {
            fault: Arc::new(Mutex::new(None)),
        };
        let f = me.fault.clone();
        fake.route(
            host,
            Arc::new(move |r: &Request| match f.lock().unwrap().clone() {
                Some(resp) => resp,
                None => normal(r),
            }),
        );
        me
    }

    fn set(&self, fault: FakeResponse) {
        *self.fault.lock().unwrap() = Some(fault);
    }

    fn clear(&self) {
        *self.fault.lock().unwrap() = None;
    }
}

struct Env {
    _log_scan: common::log_capture::ScanOnDrop,
    fake: FakeAzure,
    server: ConfiguredServer,
    kv: Switch,
    entra: Switch,
    imds: Switch,
    nmi: Switch,
}

async fn env() -> Env {
    let fake = FakeAzure::start().await;
    // Every fault case ends by scanning the provider's trace-level log for the credential, the
    // token and the stored value (the same constants in every case, so the log shared by
    // concurrent cases is scanned against them all).
    let stored = fake.keyvault.clone();
    let log_scan = common::log_capture::ScanOnDrop::new(move || {
        let mut sensitive = vec![SP_SECRET.to_owned(), TOKEN.to_owned()];
        sensitive.extend(stored.stored_values());
        sensitive
    });
    fake.keyvault
        .add_secret(VAULT, "s", "v1", "the-secret-value", 1_700_000_000);
    fake.keyvault.grant(VAULT, TOKEN, Access::All);
    // Any client credential gets the vault's token: these tests are about faults, not access.
    let entra_handler: Handler = Arc::new(|_: &Request| entra_token(TOKEN));
    let kv = Switch::install(&fake, KV_HOST, fake.keyvault.handler());
    let entra = Switch::install(&fake, ENTRA, entra_handler);
    let imds = Switch::install(&fake, IMDS, Arc::new(|_: &Request| imds_token(TOKEN)));
    let nmi = Switch::install(&fake, NMI, Arc::new(|_: &Request| nmi_token(TOKEN)));
    let server = ConfiguredServer::start(&fake_flags(&fake, "5s", &[]));
    Env {
        _log_scan: log_scan,
        fake,
        server,
        kv,
        entra,
        imds,
        nmi,
    }
}

/// Mounts secret `s` with `identity`; returns the outcome and the elapsed time.
async fn mount(env: &Env, identity: &Identity) -> (Result<Vec<u8>, (Code, String)>, Duration) {
    let mut client = env.server.client().await;
    let req = mount_request(VAULT, &[object_yaml("s", "secret")], identity, "app");
    let started = Instant::now();
    let result = client.mount(req).await;
    let elapsed = started.elapsed();
    let out = match result {
        Ok(resp) => Ok(file(resp.get_ref(), "s").to_vec()),
        Err(status) => Err((status.code(), status.message().to_owned())),
    };
    (out, elapsed)
}

fn report(case: &str, out: &Result<Vec<u8>, (Code, String)>, elapsed: Duration) {
    match out {
        Ok(_) => eprintln!("FAULT {case}: OK in {} ms", elapsed.as_millis()),
        Err((code, msg)) => eprintln!(
            "FAULT {case}: {code:?} in {} ms: {msg}",
            elapsed.as_millis()
        ),
    }
    assert!(
        elapsed < MOUNT_TIMEOUT + SLACK,
        "{case}: took {elapsed:?}, beyond the {MOUNT_TIMEOUT:?} Mount deadline"
    );
}

/// Asserts success with the stored value.
async fn expect_ok(env: &Env, case: &str, identity: &Identity) -> Duration {
    let (out, elapsed) = mount(env, identity).await;
    report(case, &out, elapsed);
    match out {
        Ok(v) => assert_eq!(v, b"the-secret-value", "{case}"),
        Err(e) => panic!("{case}: expected success, got {e:?}"),
    }
    elapsed
}

/// Asserts a failure with `code` whose message contains `fragment`.
async fn expect_err(env: &Env, case: &str, identity: &Identity, code: Code, fragment: &str) {
    expect_err_in(env, case, identity, &[code], fragment).await;
}

/// Asserts a failure with one of `codes` whose message contains `fragment`.
async fn expect_err_in(env: &Env, case: &str, identity: &Identity, codes: &[Code], fragment: &str) {
    let (out, elapsed) = mount(env, identity).await;
    report(case, &out, elapsed);
    match out {
        Ok(_) => panic!("{case}: expected {codes:?}, got success"),
        Err((c, msg)) => {
            assert!(codes.contains(&c), "{case}: {c:?} not in {codes:?}: {msg}");
            assert!(
                msg.contains(fragment),
                "{case}: message {msg:?} lacks {fragment:?}"
            );
            assert!(
                !msg.contains(SP_SECRET) && !msg.contains(TOKEN),
                "{case}: {msg}"
            );
        }
    }
}

/// After a fault the same server serves a healthy Mount.
async fn recovers(env: &Env, case: &str, identity: &Identity) {
    env.kv.clear();
    env.entra.clear();
    env.imds.clear();
    env.nmi.clear();
    expect_ok(env, &format!("{case} (next Mount)"), identity).await;
}

fn sp() -> Identity {
    Identity::sp(SP_SECRET)
}

#[tokio::test]
async fn keyvault_429_with_retry_after_then_success() {
    let env = env().await;
    env.fake
        .keyvault
        .push_faults(Some("/secrets/s"), vec![throttled(1), throttled(1)]);
    let elapsed = expect_ok(&env, "kv 429 Retry-After:1 x2 then 200", &sp()).await;
    assert!(
        elapsed >= Duration::from_millis(1900),
        "Retry-After honoured twice: {elapsed:?}"
    );
    recovers(&env, "kv 429", &sp()).await;
    env.server.stop().await;
}

#[tokio::test]
async fn keyvault_429_longer_than_the_deadline() {
    let env = env().await;
    env.kv.set(throttled(7));
    let started = Instant::now();
    expect_err(
        &env,
        "kv 429 Retry-After:7 (past the 5 s deadline)",
        &sp(),
        Code::ResourceExhausted,
        "does not fit in this Mount's time budget",
    )
    .await;
    env.kv.clear();
    // The vault's throttle gate holds every request until the advised time: the next Mount
    // fails at once without sending anything to Key Vault.
    let sent = env.fake.requests_to("kv-faults.vault.azure.net").len();
    expect_err(
        &env,
        "kv 429 gate still closed (next Mount)",
        &sp(),
        Code::ResourceExhausted,
        "throttling",
    )
    .await;
    assert_eq!(
        env.fake.requests_to("kv-faults.vault.azure.net").len(),
        sent,
        "no request while the throttle gate is closed"
    );
    tokio::time::sleep(Duration::from_secs(7).saturating_sub(started.elapsed())).await;
    expect_ok(&env, "kv 429 gate reopened (next Mount)", &sp()).await;
    env.server.stop().await;
}

#[tokio::test]
async fn keyvault_5xx_then_success() {
    let env = env().await;
    // Two failures, not three: full-jitter waits before retries 1 and 2 are at most 0.8 s and
    // 1.6 s, always inside the 5 s budget; a third (up to 3.2 s) made the outcome a coin toss
    // (the client rightly gives up when the next wait cannot fit). 503 storms are below.
    env.fake.keyvault.push_faults(
        Some("/secrets/s"),
        vec![server_error(500), server_error(502)],
    );
    expect_ok(&env, "kv 500,502 then 200", &sp()).await;
    env.server.stop().await;
}

#[tokio::test]
async fn keyvault_5xx_storm() {
    let env = env().await;
    env.kv.set(server_error(503));
    // Full-jitter backoff: either the retries run out (Internal) or the next wait would pass the
    // deadline (DeadlineExceeded); both name the last status.
    expect_err_in(
        &env,
        "kv 503 storm",
        &sp(),
        &[Code::Internal, Code::DeadlineExceeded],
        "503",
    )
    .await;
    recovers(&env, "kv 503 storm", &sp()).await;
    env.server.stop().await;
}

#[tokio::test]
async fn keyvault_slower_than_the_deadline() {
    let env = env().await;
    env.kv
        .set(FakeResponse::json(200, r#"{"value":"late"}"#).with_delay(Duration::from_secs(20)));
    expect_err(
        &env,
        "kv answers after 20 s",
        &sp(),
        Code::DeadlineExceeded,
        "deadline ran out",
    )
    .await;
    recovers(&env, "kv slow", &sp()).await;
    env.server.stop().await;
}

#[tokio::test]
async fn keyvault_reset_mid_body_then_success() {
    let env = env().await;
    let body = br#"{"value":"the-secret-value","id":"https://kv-faults.vault.azure.net/secrets/s/v1","attributes":{"enabled":true}}"#;
    env.fake.keyvault.push_faults(
        Some("/secrets/s"),
        vec![FakeResponse::json(200, body.to_vec()).with_reset_after(20)],
    );
    expect_ok(&env, "kv reset after 20 body bytes, then 200", &sp()).await;
    env.server.stop().await;
}

#[tokio::test]
async fn keyvault_reset_mid_body_always() {
    let env = env().await;
    let body = br#"{"value":"the-secret-value","id":"https://kv-faults.vault.azure.net/secrets/s/v1","attributes":{"enabled":true}}"#;
    env.kv
        .set(FakeResponse::json(200, body.to_vec()).with_reset_after(20));
    expect_err(
        &env,
        "kv reset mid-body always",
        &sp(),
        Code::Unavailable,
        "cannot reach Key Vault",
    )
    .await;
    recovers(&env, "kv reset mid-body", &sp()).await;
    env.server.stop().await;
}

#[tokio::test]
async fn keyvault_connection_reset_before_answer() {
    let env = env().await;
    env.kv.set(FakeResponse::reset());
    expect_err(
        &env,
        "kv connection reset",
        &sp(),
        Code::Unavailable,
        "cannot reach Key Vault",
    )
    .await;
    recovers(&env, "kv connection reset", &sp()).await;
    env.server.stop().await;
}

#[tokio::test]
async fn keyvault_truncated_json() {
    let env = env().await;
    env.kv.set(FakeResponse::json(200, r#"{"value":"the-secr"#));
    expect_err(
        &env,
        "kv truncated JSON",
        &sp(),
        Code::Internal,
        "not the expected JSON",
    )
    .await;
    recovers(&env, "kv truncated JSON", &sp()).await;
    env.server.stop().await;
}

#[tokio::test]
async fn keyvault_malformed_json() {
    let env = env().await;
    env.kv.set(FakeResponse::json(200, "not json at all"));
    expect_err(
        &env,
        "kv malformed JSON",
        &sp(),
        Code::Internal,
        "not the expected JSON",
    )
    .await;
    env.kv.set(FakeResponse::json(200, r#"{"value":42}"#));
    expect_err(
        &env,
        "kv value of the wrong type",
        &sp(),
        Code::Internal,
        "not the expected JSON",
    )
    .await;
    env.kv.set(FakeResponse::json(200, r#"{"id":"x"}"#));
    expect_err(
        &env,
        "kv value missing",
        &sp(),
        Code::Internal,
        "not the expected JSON",
    )
    .await;
    recovers(&env, "kv malformed JSON", &sp()).await;
    env.server.stop().await;
}

#[tokio::test]
async fn keyvault_wrong_content_type() {
    let env = env().await;
    // An HTML error page from a gateway in front of Key Vault.
    let mut html = FakeResponse::json(502, "<html><body>Bad Gateway</body></html>");
    html.headers = vec![("content-type".into(), "text/html".into())];
    env.kv.set(html);
    expect_err_in(
        &env,
        "kv 502 text/html storm",
        &sp(),
        &[Code::Internal, Code::DeadlineExceeded],
        "502",
    )
    .await;
    // A 200 whose body is HTML.
    let mut html200 = FakeResponse::json(200, "<html><body>Sign in</body></html>");
    html200.headers = vec![("content-type".into(), "text/html".into())];
    env.kv.set(html200);
    expect_err(
        &env,
        "kv 200 text/html",
        &sp(),
        Code::Internal,
        "not the expected JSON",
    )
    .await;
    recovers(&env, "kv wrong content type", &sp()).await;
    env.server.stop().await;
}

#[tokio::test]
async fn keyvault_oversized_body() {
    let env = env().await;
    let mut big = br#"{"value":""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 9 << 20));
    big.extend(br#""}"#);
    env.kv.set(FakeResponse::json(200, big));
    expect_err(
        &env,
        "kv 9 MiB body",
        &sp(),
        Code::ResourceExhausted,
        "larger than 8388608 bytes",
    )
    .await;
    recovers(&env, "kv oversized body", &sp()).await;
    env.server.stop().await;
}

#[tokio::test]
async fn entra_down_and_garbage() {
    let env = env().await;
    let cases: Vec<(&str, FakeResponse, Code, &str)> = vec![
        (
            "entra 503 storm",
            server_error(503),
            Code::Internal,
            "status 503",
        ),
        (
            "entra connection reset",
            FakeResponse::reset(),
            Code::Unavailable,
            "Entra ID is not reachable",
        ),
        (
            "entra 200 garbage",
            FakeResponse::json(200, "garbage"),
            Code::Internal,
            "not valid JSON",
        ),
        (
            "entra 200 without access_token",
            FakeResponse::json(200, r#"{"token_type":"Bearer","expires_in":3599}"#),
            Code::Internal,
            "Entra ID",
        ),
        (
            "entra slower than the deadline",
            entra_token(TOKEN).with_delay(Duration::from_secs(20)),
            Code::DeadlineExceeded,
            "timed out waiting for a token",
        ),
    ];
    for (case, fault, code, fragment) in cases {
        env.entra.set(fault);
        // A fresh secret per case: the token cache must not answer.
        let id = Identity::sp(&format!("{SP_SECRET}-{}", case.len()));
        expect_err(&env, case, &id, code, fragment).await;
    }
    recovers(&env, "entra faults", &sp()).await;
    env.server.stop().await;
}

#[tokio::test]
async fn entra_5xx_then_success() {
    let env = env().await;
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n2 = n.clone();
    env.fake.route_fn(ENTRA, move |_| {
        if n2.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
            server_error(503)
        } else {
            entra_token(TOKEN)
        }
    });
    expect_ok(&env, "entra 503 x2 then token", &sp()).await;
    env.server.stop().await;
}

#[tokio::test]
async fn imds_down_and_garbage() {
    let env = env().await;
    let cases: Vec<(&str, FakeResponse, Code, &str)> = vec![
        (
            "imds 500 storm",
            server_error(500),
            Code::Internal,
            "status 500",
        ),
        (
            "imds connection reset",
            FakeResponse::reset(),
            Code::Unavailable,
            "IMDS is not reachable",
        ),
        (
            "imds 200 garbage",
            FakeResponse::json(200, "<html>"),
            Code::Internal,
            "not valid JSON",
        ),
    ];
    for (case, fault, code, fragment) in cases {
        env.imds.set(fault);
        expect_err(&env, case, &Identity::VmManaged, code, fragment).await;
    }
    recovers(&env, "imds faults", &Identity::VmManaged).await;
    env.server.stop().await;
}

#[tokio::test]
async fn nmi_down_and_garbage() {
    let env = env().await;
    let _nmi = common::nmi::NmiPort::claim(env.fake.http_addr).await;
    let cases: Vec<(&str, FakeResponse, Code, &str)> = vec![
        // NMI answers every refusal with a non-200 status (§12.1: Unauthenticated), so no retries.
        (
            "nmi 500",
            server_error(500),
            Code::Unauthenticated,
            "nmi response failed with status code: 500",
        ),
        (
            "nmi connection reset",
            FakeResponse::reset(),
            Code::Unavailable,
            "NMI is not reachable",
        ),
        (
            "nmi 200 truncated JSON",
            FakeResponse::json(200, "{\"token\":"),
            Code::Unauthenticated,
            "nmi did not return expected values",
        ),
    ];
    for (case, fault, code, fragment) in cases {
        env.nmi.set(fault);
        expect_err(&env, case, &Identity::AadPod, code, fragment).await;
    }
    recovers(&env, "nmi faults", &Identity::AadPod).await;
    env.server.stop().await;
}
