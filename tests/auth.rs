//! Token acquisition for every identity mode against fake Entra ID (HTTPS via CONNECT through
//! the recording proxy, generated CA), fake IMDS (plain HTTP, absolute-form through the same
//! proxy) and fake NMI (directly on 127.0.0.1:2579: loopback is never proxied), using the
//! production `HttpClient` and `TokenProvider`.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test helpers fail the test on setup errors"
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::fake_azure::{FakeAzure, FakeResponse, Request};
use common::fake_identity::{FakeIdentity, Source};
use common::nmi::NmiPort;
use rust_azure_provider::auth::proxy_transport::TokenProxyTransport;
use rust_azure_provider::auth::sni_discovery::{API_SERVER_NAME, DiscoveryTarget};
use rust_azure_provider::auth::token_proxy::sni_name_for_cluster;
use rust_azure_provider::auth::{
    ModeLabel, PodRef, RetryPolicy, TokenProvider, TokenProviderOptions, TokenProxy,
    TokenProxySetup, TokenRequest, TokenTarget,
};
use rust_azure_provider::error::ErrorClass;
use rust_azure_provider::http::{HttpClient, HttpConfig};
use rust_azure_provider::mount::params::{IdentityMode, UserAssignedIdentity};
use tokio::time::Instant;

const ENTRA: &str = "login.microsoftonline.com";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

fn http(fake: &FakeAzure, no_proxy: &str) -> Arc<HttpClient> {
    Arc::new(
        HttpClient::new(&HttpConfig {
            ca_bundle: Some(fake.pki.ca_path().to_path_buf()),
            user_agent_suffix: "auth-tests".into(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            proxy_override: Some(fake.proxy_url()),
            no_proxy: Some(no_proxy.into()),
        })
        .expect("http client"),
    )
}

fn provider(fake: &FakeAzure) -> TokenProvider {
    TokenProvider::new(
        http(fake, ""),
        TokenProviderOptions {
            retry: RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(100),
                attempt_timeout: Duration::from_secs(5),
            },
            ..Default::default()
        },
    )
}

fn target() -> TokenTarget {
    TokenTarget {
        authority_host: "https://login.microsoftonline.com/".into(),
        tenant_id: TENANT.into(),
        resource: "https://vault.azure.net".into(),
    }
}

fn pod() -> PodRef<'static> {
    PodRef {
        namespace: "default",
        name: "busybox-0",
        uid: "0b6d6f4c-1111-2222-3333-444455556666",
    }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

async fn token(p: &TokenProvider, identity: &IdentityMode) -> Result<String, (ErrorClass, String)> {
    let t = target();
    p.token(
        &TokenRequest {
            identity,
            target: &t,
            pod: pod(),
        },
        deadline(),
    )
    .await
    .map(|t| t.token.expose().to_owned())
    .map_err(|e| (e.class(), e.to_string()))
}

fn entra_ok(expires_in: u64) -> FakeResponse {
    FakeResponse::json(
        200,
        format!(
            r#"{{"token_type":"Bearer","expires_in":{expires_in},"ext_expires_in":{expires_in},"access_token":"entra-token"}}"#
        ),
    )
}

fn form_value(req: &Request, key: &str) -> Option<String> {
    req.form()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

fn sp(secret: &str) -> IdentityMode {
    IdentityMode::ServicePrincipal {
        client_id: "sp-client".into(),
        client_secret: secret.into(),
    }
}

fn wi(sa_token: &str) -> IdentityMode {
    IdentityMode::WorkloadIdentity {
        client_id: "wi-client".into(),
        service_account_token: sa_token.into(),
    }
}

#[tokio::test]
async fn service_principal_wire_shape_cold_and_warm() {
    let fake = FakeAzure::start().await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    fake.route_fn(ENTRA, move |r| {
        s.lock().unwrap().push(r.clone());
        entra_ok(3599)
    });
    let p = provider(&fake);
    assert_eq!(token(&p, &sp("s3cr&t=")).await.unwrap(), "entra-token");
    assert_eq!(token(&p, &sp("s3cr&t=")).await.unwrap(), "entra-token");

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "cold 1, warm 0");
    let r = &seen[0];
    assert!(r.tls);
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, format!("/{TENANT}/oauth2/v2.0/token"));
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert!(
        r.header("user-agent").unwrap().contains("auth-tests"),
        "{:?}",
        r.header("user-agent")
    );
    assert_eq!(
        r.form(),
        vec![
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            ("client_id".to_owned(), "sp-client".to_owned()),
            ("client_secret".to_owned(), "s3cr&t=".to_owned()),
            (
                "scope".to_owned(),
                "https://vault.azure.net/.default".to_owned()
            ),
        ]
    );
    // Reached through the forward proxy with CONNECT.
    let hosts = fake.proxy.hosts();
    assert!(hosts.iter().any(|h| h.starts_with(ENTRA)), "{hosts:?}");
    let stats = p.stats(ModeLabel::ServicePrincipal);
    assert_eq!((stats.misses, stats.hits, stats.requests_ok), (1, 1, 1));
}

#[tokio::test]
async fn workload_identity_two_tokens_two_requests() {
    let fake = FakeAzure::start().await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    fake.route_fn(ENTRA, move |r| {
        s.lock().unwrap().push(r.clone());
        entra_ok(3599)
    });
    let p = provider(&fake);
    token(&p, &wi("sa-jwt-pod-a")).await.unwrap();
    token(&p, &wi("sa-jwt-pod-b")).await.unwrap();
    token(&p, &wi("sa-jwt-pod-a")).await.unwrap();
    token(&p, &wi("sa-jwt-pod-b")).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    let r = &seen[0];
    assert_eq!(r.path, format!("/{TENANT}/oauth2/v2.0/token"));
    assert_eq!(
        form_value(r, "client_assertion_type").as_deref(),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    assert_eq!(
        form_value(r, "client_assertion").as_deref(),
        Some("sa-jwt-pod-a")
    );
    assert_eq!(
        form_value(&seen[1], "client_assertion").as_deref(),
        Some("sa-jwt-pod-b")
    );
    assert_eq!(form_value(r, "client_id").as_deref(), Some("wi-client"));
    assert_eq!(
        form_value(r, "grant_type").as_deref(),
        Some("client_credentials")
    );
    assert_eq!(
        form_value(r, "scope").as_deref(),
        Some("https://vault.azure.net/.default")
    );
    assert_eq!(form_value(r, "client_secret"), None);
}

/// The same service-account token (or client secret) presented with client id A and then B is two
/// Entra ID requests and two tokens: B is never served the token issued to A.
#[tokio::test]
async fn same_credential_with_two_client_ids_is_two_tokens() {
    let fake = FakeAzure::start().await;
    let id = FakeIdentity::install(&fake);
    id.allow_client_secret("client-a", "shared-secret");
    id.allow_client_secret("client-b", "shared-secret");
    id.allow_assertion("client-a", "shared-sa-jwt");
    id.allow_assertion("client-b", "shared-sa-jwt");
    let p = provider(&fake);
    let modes = |client: &str| {
        [
            IdentityMode::WorkloadIdentity {
                client_id: client.into(),
                service_account_token: "shared-sa-jwt".into(),
            },
            IdentityMode::ServicePrincipal {
                client_id: client.into(),
                client_secret: "shared-secret".into(),
            },
        ]
    };
    for (a, b) in modes("client-a").iter().zip(modes("client-b").iter()) {
        let before = id.count(Source::Entra);
        let token_a = token(&p, a).await.unwrap();
        let token_b = token(&p, b).await.unwrap();
        assert_eq!(token(&p, a).await.unwrap(), token_a);
        assert_eq!(token(&p, b).await.unwrap(), token_b);
        assert_eq!(id.count(Source::Entra) - before, 2, "{b:?}");
        assert_ne!(token_a, token_b, "{b:?} was served the token of client-a");
        let subject_of = |t: &str| {
            id.issued()
                .into_iter()
                .find(|i| i.access_token == t)
                .map(|i| i.subject)
                .unwrap()
        };
        assert!(subject_of(&token_b).contains("client-b"), "{b:?}");
        assert!(subject_of(&token_a).contains("client-a"), "{a:?}");
    }
}

#[tokio::test]
async fn refresh_after_short_expiry() {
    let fake = FakeAzure::start().await;
    let n = Arc::new(AtomicUsize::new(0));
    let c = n.clone();
    fake.route_fn(ENTRA, move |_| {
        c.fetch_add(1, Ordering::SeqCst);
        entra_ok(1)
    });
    let p = provider(&fake);
    token(&p, &sp("s")).await.unwrap();
    token(&p, &sp("s")).await.unwrap();
    assert_eq!(n.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    token(&p, &sp("s")).await.unwrap();
    assert_eq!(n.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn invalid_client_secret_is_unauthenticated() {
    let fake = FakeAzure::start().await;
    let n = Arc::new(AtomicUsize::new(0));
    let c = n.clone();
    fake.route_fn(ENTRA, move |_| {
        c.fetch_add(1, Ordering::SeqCst);
        FakeResponse::json(
            401,
            r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '00000000-0000-0000-0000-000000000000'.\r\nTrace ID: 0a5c\r\nCorrelation ID: 1b6d\r\nTimestamp: 2024-01-01 00:00:00Z","error_codes":[7000215]}"#,
        )
    });
    let p = provider(&fake);
    let (class, msg) = token(&p, &sp("wrong-secret")).await.unwrap_err();
    assert_eq!(class, ErrorClass::Unauthenticated);
    assert!(
        msg.contains("invalid_client: AADSTS7000215: Invalid client secret provided."),
        "{msg}"
    );
    assert!(msg.contains("update clientsecret"), "{msg}");
    assert!(
        !msg.contains("wrong-secret") && !msg.contains("Trace ID"),
        "{msg}"
    );
    assert_eq!(n.load(Ordering::SeqCst), 1, "rejections are not retried");
    // Not cached: the next Mount asks again.
    token(&p, &sp("wrong-secret")).await.unwrap_err();
    assert_eq!(n.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn entra_429_then_success() {
    let fake = FakeAzure::start().await;
    let n = Arc::new(AtomicUsize::new(0));
    let c = n.clone();
    fake.route_fn(ENTRA, move |_| {
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            FakeResponse::json(429, r#"{"error":"temporarily_unavailable"}"#)
                .with_header("retry-after", "0")
        } else {
            entra_ok(3599)
        }
    });
    let p = provider(&fake);
    assert_eq!(token(&p, &sp("s")).await.unwrap(), "entra-token");
    assert_eq!(n.load(Ordering::SeqCst), 2);
}

/// A provider whose backoff is short but whose cap lets a `Retry-After` of a second through, so
/// only an honoured header can make the retry wait that long.
fn patient_provider(fake: &FakeAzure) -> TokenProvider {
    TokenProvider::new(
        http(fake, ""),
        TokenProviderOptions {
            retry: RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_secs(5),
                attempt_timeout: Duration::from_secs(5),
            },
            ..Default::default()
        },
    )
}

/// Routes `host` to a 429 with `Retry-After: 1` and then `ok`, recording when each request came.
fn throttle_once(
    fake: &FakeAzure,
    host: &str,
    ok: FakeResponse,
) -> Arc<std::sync::Mutex<Vec<std::time::Instant>>> {
    let arrivals = Arc::new(std::sync::Mutex::new(Vec::new()));
    let a = arrivals.clone();
    fake.route_fn(host, move |_| {
        let mut a = a.lock().unwrap();
        a.push(std::time::Instant::now());
        if a.len() == 1 {
            FakeResponse::json(429, r#"{"error":"temporarily_unavailable"}"#)
                .with_header("retry-after", "1")
        } else {
            ok.clone()
        }
    });
    arrivals
}

fn assert_waited_about_a_second(arrivals: &[std::time::Instant], service: &str) {
    assert_eq!(arrivals.len(), 2, "{service}: one 429, one retry");
    let gap = arrivals[1] - arrivals[0];
    assert!(
        gap >= Duration::from_millis(950),
        "{service}: retried {gap:?} after a 429 with Retry-After: 1"
    );
}

#[tokio::test]
async fn entra_429_retry_after_is_honoured() {
    let fake = FakeAzure::start().await;
    let arrivals = throttle_once(&fake, ENTRA, entra_ok(3599));
    let p = patient_provider(&fake);
    assert_eq!(token(&p, &sp("s")).await.unwrap(), "entra-token");
    assert_waited_about_a_second(&arrivals.lock().unwrap(), "Entra ID");
}

#[tokio::test]
async fn imds_429_retry_after_is_honoured() {
    let fake = FakeAzure::start().await;
    let arrivals = throttle_once(
        &fake,
        "169.254.169.254",
        FakeResponse::json(
            200,
            r#"{"access_token":"imds-token","client_id":"c","expires_in":"86399","expires_on":"4102444800","ext_expires_in":"86399","not_before":"1","resource":"https://vault.azure.net","token_type":"Bearer"}"#,
        ),
    );
    let p = patient_provider(&fake);
    let system = IdentityMode::VmManagedIdentity {
        user_assigned: None,
    };
    assert_eq!(token(&p, &system).await.unwrap(), "imds-token");
    assert_waited_about_a_second(&arrivals.lock().unwrap(), "IMDS");
}

#[tokio::test]
async fn entra_429_persistent_is_resource_exhausted() {
    let fake = FakeAzure::start().await;
    fake.route_fn(ENTRA, |_| {
        FakeResponse::status(429).with_header("retry-after", "0")
    });
    let p = provider(&fake);
    let (class, msg) = token(&p, &sp("s")).await.unwrap_err();
    assert_eq!(class, ErrorClass::ResourceExhausted, "{msg}");
}

#[tokio::test]
async fn entra_unreachable_is_unavailable() {
    let fake = FakeAzure::start().await;
    fake.proxy.make_unresolvable(ENTRA);
    let p = provider(&fake);
    let (class, msg) = token(&p, &sp("s")).await.unwrap_err();
    assert_eq!(class, ErrorClass::Unavailable, "{msg}");
    assert!(
        msg.starts_with("Entra ID is not reachable at https://login.microsoftonline.com"),
        "{msg}"
    );
}

#[tokio::test]
async fn imds_wire_shape_and_cache() {
    let fake = FakeAzure::start().await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    fake.route_fn("169.254.169.254", move |r| {
        s.lock().unwrap().push(r.clone());
        FakeResponse::json(
            200,
            r#"{"access_token":"imds-token","client_id":"c","expires_in":"86399","expires_on":"4102444800","ext_expires_in":"86399","not_before":"1","resource":"https://vault.azure.net","token_type":"Bearer"}"#,
        )
    });
    let p = provider(&fake);
    let system = IdentityMode::VmManagedIdentity {
        user_assigned: None,
    };
    let by_client = IdentityMode::VmManagedIdentity {
        user_assigned: Some(UserAssignedIdentity::ClientId(
            "11111111-2222-3333-4444-555555555555".into(),
        )),
    };
    let by_resource = IdentityMode::VmManagedIdentity {
        user_assigned: Some(UserAssignedIdentity::ResourceId(
            "/subscriptions/s/resourcegroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1".into(),
        )),
    };
    for id in [
        &system,
        &by_client,
        &by_resource,
        &system,
        &by_client,
        &by_resource,
    ] {
        assert_eq!(token(&p, id).await.unwrap(), "imds-token");
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "cold 1 per identity, warm 0");
    for r in seen.iter() {
        assert!(!r.tls);
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/metadata/identity/oauth2/token");
        assert_eq!(r.header("metadata"), Some("true"));
        assert_eq!(r.query_param("api-version"), Some("2018-02-01"));
        assert_eq!(
            r.query_param("resource"),
            Some("https%3A%2F%2Fvault.azure.net")
        );
    }
    assert_eq!(seen[0].query_param("client_id"), None);
    assert_eq!(seen[0].query_param("msi_res_id"), None);
    assert_eq!(
        seen[1].query_param("client_id"),
        Some("11111111-2222-3333-4444-555555555555")
    );
    assert_eq!(
        seen[2].query_param("msi_res_id"),
        Some(
            "%2Fsubscriptions%2Fs%2Fresourcegroups%2Fg%2Fproviders%2FMicrosoft.ManagedIdentity%2FuserAssignedIdentities%2Fid1"
        )
    );
    // Plain HTTP through the proxy in absolute form.
    let records = fake.proxy.records();
    assert!(
        records
            .iter()
            .any(|r| r.target.starts_with("http://169.254.169.254/metadata/")),
        "{records:?}"
    );
}

#[tokio::test]
async fn imds_multiple_identities_hint() {
    let fake = FakeAzure::start().await;
    fake.route_fn("169.254.169.254", |_| {
        FakeResponse::json(
            400,
            r#"{"error":"invalid_request","error_description":"Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request"}"#,
        )
    });
    let p = provider(&fake);
    let (class, msg) = token(
        &p,
        &IdentityMode::VmManagedIdentity {
            user_assigned: None,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(class, ErrorClass::Unauthenticated);
    assert_eq!(
        msg,
        "IMDS rejected the token request (status 400): invalid_request: Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request; set userAssignedIdentityID (exact spelling) to the identity's client ID or resource ID"
    );
}

#[tokio::test]
async fn nmi_wire_shape_and_cache() {
    let fake = FakeAzure::start().await;
    let _nmi = NmiPort::claim(fake.http_addr).await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    fake.route_fn("localhost", move |r| {
        s.lock().unwrap().push(r.clone());
        FakeResponse::json(
            200,
            r#"{"token":{"access_token":"nmi-token","refresh_token":"","expires_in":"3599","expires_on":"4102444800","not_before":"1","resource":"https://vault.azure.net","token_type":"Bearer"},"clientid":"nmi-client"}"#,
        )
    });
    let p = provider(&fake);
    assert_eq!(
        token(&p, &IdentityMode::PodIdentity).await.unwrap(),
        "nmi-token"
    );
    assert_eq!(
        token(&p, &IdentityMode::PodIdentity).await.unwrap(),
        "nmi-token"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.host_header, "localhost:2579");
    assert_eq!(r.path, "/host/token/");
    assert_eq!(r.query.as_deref(), Some("resource=https://vault.azure.net"));
    assert_eq!(r.header("podns"), Some("default"));
    assert_eq!(r.header("podname"), Some("busybox-0"));
    // The client has a proxy for everything and an empty no-proxy list: NMI went direct anyway.
    let records = fake.proxy.records();
    assert!(records.iter().all(|r| r.host != "localhost"), "{records:?}");
}

#[tokio::test]
async fn nmi_404_and_403() {
    for (status, body) in [
        (404, "pod default/busybox-0 not found"),
        (
            403,
            "no AzureIdentity found for pod:default/busybox-0 in assigned state",
        ),
    ] {
        let fake = FakeAzure::start().await;
        let _nmi = NmiPort::claim(fake.http_addr).await;
        fake.route_fn("localhost", move |_| FakeResponse {
            status,
            headers: vec![],
            body: body.as_bytes().to_vec(),
            delay: None,
            reset: false,
            hold: None,
        });
        let p = provider(&fake);
        let (class, msg) = token(&p, &IdentityMode::PodIdentity).await.unwrap_err();
        assert_eq!(class, ErrorClass::Unauthenticated);
        assert_eq!(
            msg,
            format!("nmi response failed with status code: {status}, response body: {body}")
        );
    }
}

#[tokio::test]
async fn nmi_unreachable() {
    let fake = FakeAzure::start().await;
    // A port nobody listens on, reached directly (NO_PROXY), as NMI on the node would be.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let p = TokenProvider::new(
        http(&fake, "127.0.0.1"),
        TokenProviderOptions {
            nmi_endpoint: format!("http://{addr}"),
            retry: RetryPolicy {
                max_attempts: 2,
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(50),
                attempt_timeout: Duration::from_secs(5),
            },
            ..Default::default()
        },
    );
    let (class, msg) = token(&p, &IdentityMode::PodIdentity).await.unwrap_err();
    assert_eq!(class, ErrorClass::Unavailable, "{msg}");
    assert!(
        msg.starts_with(&format!("NMI is not reachable at http://{addr}: ")),
        "{msg}"
    );
    assert!(
        msg.ends_with("(is aad-pod-identity NMI running on this node, and does the provider run with hostNetwork: true?)"),
        "{msg}"
    );
}

#[tokio::test]
async fn identity_binding_through_token_proxy_with_sni_and_ca() {
    const SNI: &str = "a0123456789abcdefghijklmnopqrstuv.ests.aks";
    let fake = FakeAzure::start_with_hosts(&[SNI]).await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    // The fake routes by Host header: the token proxy keeps the proxy's authority there.
    fake.route_fn("127.0.0.1", move |r| {
        s.lock().unwrap().push(r.clone());
        entra_ok(3599)
    });
    let proxy_url = format!("https://127.0.0.1:{}", fake.https_addr.port());
    let transport = TokenProxyTransport::new(&proxy_url, SNI, fake.pki.ca_path(), "ua-test")
        .expect("proxy transport");
    let p = TokenProvider::new(
        http(&fake, ""),
        TokenProviderOptions {
            token_proxy: Some(TokenProxySetup::from(TokenProxy {
                url: proxy_url.clone(),
                sni_name: SNI.into(),
                transport: Ok(Arc::new(transport)),
            })),
            ..Default::default()
        },
    );
    let id = IdentityMode::AzureTokenProxy {
        client_id: "ib-client".into(),
        service_account_token: "binding-jwt".into(),
    };
    assert_eq!(token(&p, &id).await.unwrap(), "entra-token");
    assert_eq!(token(&p, &id).await.unwrap(), "entra-token");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert!(r.tls);
    assert_eq!(r.path, format!("/{TENANT}/oauth2/v2.0/token"));
    assert_eq!(
        r.host_header,
        format!("127.0.0.1:{}", fake.https_addr.port())
    );
    assert_eq!(
        form_value(r, "client_assertion").as_deref(),
        Some("binding-jwt")
    );
    assert_eq!(form_value(r, "client_id").as_deref(), Some("ib-client"));
    // Direct connection: the egress proxy is not used for the in-cluster token proxy.
    assert!(fake.proxy.records().is_empty());
}

#[tokio::test]
async fn identity_binding_with_wrong_sni_fails_tls() {
    let fake = FakeAzure::start().await;
    fake.route_fn("127.0.0.1", |_| entra_ok(3599));
    let proxy_url = format!("https://127.0.0.1:{}", fake.https_addr.port());
    let transport =
        TokenProxyTransport::new(&proxy_url, "not-in-cert.ests.aks", fake.pki.ca_path(), "ua")
            .expect("proxy transport");
    let p = TokenProvider::new(
        http(&fake, ""),
        TokenProviderOptions {
            token_proxy: Some(TokenProxySetup::from(TokenProxy {
                url: proxy_url,
                sni_name: "not-in-cert.ests.aks".into(),
                transport: Ok(Arc::new(transport)),
            })),
            retry: RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            },
            ..Default::default()
        },
    );
    let id = IdentityMode::AzureTokenProxy {
        client_id: "ib-client".into(),
        service_account_token: "binding-jwt".into(),
    };
    let (class, msg) = token(&p, &id).await.unwrap_err();
    assert_eq!(class, ErrorClass::Unavailable, "{msg}");
    assert!(
        msg.contains("not valid for name \"not-in-cert.ests.aks\""),
        "{msg}"
    );
}

fn discovery_target(fake: &FakeAzure) -> DiscoveryTarget {
    DiscoveryTarget {
        host: "127.0.0.1".into(),
        port: fake.https_addr.port(),
        ca_path: fake.pki.ca_path().to_path_buf(),
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn identity_binding_with_discovered_sni_name() {
    let sni = sni_name_for_cluster("abc123");
    // One fake plays the API server (discovery) and the token proxy (the computed SNI name).
    let fake = FakeAzure::start_with_hosts(&[
        API_SERVER_NAME,
        "hcp-kubernetes.abc123.svc.cluster.local",
        &sni,
    ])
    .await;
    fake.route_fn("127.0.0.1", |_| entra_ok(3599));
    let proxy_url = format!("https://127.0.0.1:{}", fake.https_addr.port());
    let setup = TokenProxySetup::start(&proxy_url, "", "ua", discovery_target(&fake));
    let p = TokenProvider::new(
        http(&fake, ""),
        TokenProviderOptions {
            token_proxy: Some(setup.clone()),
            ..Default::default()
        },
    );
    let id = IdentityMode::AzureTokenProxy {
        client_id: "ib-client".into(),
        service_account_token: "binding-jwt".into(),
    };
    assert_eq!(token(&p, &id).await.unwrap(), "entra-token");
    assert_eq!(setup.get().unwrap().sni_name, sni);
    assert_eq!(fake.requests_to("127.0.0.1").len(), 1);
}

/// A Mount in identity-binding mode, served by the production server built with an empty
/// `--sni-name` whose discovery fails (the API server certificate names no AKS cluster).
#[tokio::test]
async fn mount_with_failed_sni_discovery_is_failed_precondition() {
    use clap::Parser;
    use common::provider_server::{channel, serve_service_at};
    use rust_azure_provider::grpc::ProviderService;
    use rust_azure_provider::grpc::proto::v1alpha1 as pb;
    use rust_azure_provider::grpc::proto::v1alpha1::csi_driver_provider_client::CsiDriverProviderClient;

    let fake = FakeAzure::start_with_hosts(&[API_SERVER_NAME]).await;
    let cli = rust_azure_provider::config::Cli::try_parse_from(["rust-azure-provider"]).unwrap();
    let settings = cli.serve.validate().unwrap();
    assert_eq!(settings.args.sni_name, "");
    let metrics = rust_azure_provider::metrics::Metrics::new();
    let provider = rust_azure_provider::app::build_provider_with_discovery(
        &settings,
        metrics.clone(),
        discovery_target(&fake),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rust-azure.sock");
    let (stop, handle) = serve_service_at(
        &path,
        ProviderService::new(provider, metrics, 4 << 20),
        Duration::from_secs(5),
    );
    let attributes = serde_json::json!({
        "csi.storage.k8s.io/pod.name": "app",
        "csi.storage.k8s.io/pod.namespace": "default",
        "csi.storage.k8s.io/serviceAccount.tokens":
            r#"{"api://AKSIdentityBinding":{"token":"binding-jwt","expirationTimestamp":"2030-01-01T00:00:00Z"}}"#,
        "useAzureTokenProxy": "true",
        "clientID": "ib-client",
        "keyvaultName": "kv-sni-test",
        "tenantId": TENANT,
        "objects": "array:\n  - |\n    objectName: s\n    objectType: secret\n",
    });
    let mut client = CsiDriverProviderClient::new(channel(&path).await);
    let status = client
        .mount(pb::MountRequest {
            attributes: attributes.to_string(),
            secrets: "null".into(),
            target_path: "/var/lib/kubelet/pods/x/volumes/kubernetes.io~csi/v/mount".into(),
            permission: "420".into(),
            current_object_version: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    let msg = status.message();
    assert!(msg.contains("proxy transport not available: "), "{msg}");
    assert!(
        msg.contains("has no DNS name hcp-kubernetes.<clusterID>.svc.cluster.local"),
        "{msg}"
    );
    // Nothing reached Entra ID or Key Vault.
    assert!(fake.proxy.records().is_empty());
    stop.cancel();
    handle.await.unwrap().unwrap();
}
