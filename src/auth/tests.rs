//! Provider-level tests with a scripted in-memory transport.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use super::*;
use crate::error::ErrorClass;
use crate::mount::params::UserAssignedIdentity;
use crate::secret::SecretBytes;

#[derive(Debug)]
struct Seen {
    method: AuthMethod,
    url: String,
    headers: Vec<(&'static str, String)>,
    form: Option<String>,
}

type Reply = Result<(u16, Option<Duration>, &'static str), TransportError>;

/// Answers from a script; when the script is empty, repeats `default`.
struct Fake {
    seen: Mutex<Vec<Seen>>,
    script: Mutex<VecDeque<Reply>>,
    default: Reply,
}

impl Fake {
    fn new(default: Reply) -> Arc<Self> {
        Arc::new(Self {
            seen: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            default,
        })
    }
    fn then(self: &Arc<Self>, r: Reply) -> Arc<Self> {
        self.script.lock().unwrap().push_back(r);
        self.clone()
    }
    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl AuthTransport for Fake {
    fn send(
        &self,
        request: AuthRequest,
        _timeout: Duration,
    ) -> futures::future::BoxFuture<'_, Result<AuthResponse, TransportError>> {
        self.seen.lock().unwrap().push(Seen {
            method: request.method,
            url: request.url.clone(),
            headers: request.headers.clone(),
            form: request.form.as_ref().map(|f| f.expose().to_owned()),
        });
        let reply = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| self.default.clone());
        Box::pin(async move {
            let (status, retry_after, body) = reply?;
            Ok(AuthResponse {
                status,
                retry_after,
                body: SecretBytes::from(body.as_bytes().to_vec()),
            })
        })
    }
}

const ENTRA_OK: Reply = Ok((
    200,
    None,
    r#"{"token_type":"Bearer","expires_in":3599,"access_token":"AT"}"#,
));
const IMDS_OK: Reply = Ok((
    200,
    None,
    r#"{"access_token":"AT","expires_in":"3599","expires_on":"4102444800","resource":"https://vault.azure.net","token_type":"Bearer"}"#,
));
const NMI_OK: Reply = Ok((
    200,
    None,
    r#"{"token":{"access_token":"AT","expires_in":"3599","expires_on":"4102444800"},"clientid":"nmi-client"}"#,
));

fn target() -> TokenTarget {
    TokenTarget {
        authority_host: "https://login.microsoftonline.com/".into(),
        tenant_id: "tenant-1".into(),
        resource: "https://vault.azure.net".into(),
    }
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        attempt_timeout: Duration::from_secs(1),
    }
}

fn provider(fake: &Arc<Fake>) -> TokenProvider {
    TokenProvider::new(
        fake.clone(),
        TokenProviderOptions {
            retry: fast_retry(),
            ..Default::default()
        },
    )
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn sp(secret: &str) -> IdentityMode {
    IdentityMode::ServicePrincipal {
        client_id: "cid".into(),
        client_secret: secret.into(),
    }
}

fn wi(token: &str) -> IdentityMode {
    IdentityMode::WorkloadIdentity {
        client_id: "cid".into(),
        service_account_token: token.into(),
    }
}

fn pod() -> PodRef<'static> {
    PodRef {
        namespace: "ns",
        name: "pod-0",
        uid: "uid-0",
    }
}

fn req<'a>(identity: &'a IdentityMode, target: &'a TokenTarget) -> TokenRequest<'a> {
    TokenRequest {
        identity,
        target,
        pod: pod(),
    }
}

#[test]
fn cache_keys_separate_credential_material() {
    let fake = Fake::new(ENTRA_OK);
    let p = provider(&fake);
    let t = target();
    let key = |i: &IdentityMode| p.cache_key(&req(i, &t)).unwrap();
    assert_eq!(key(&wi("tok-a")), key(&wi("tok-a")));
    assert_ne!(key(&wi("tok-a")), key(&wi("tok-b")));
    assert_ne!(key(&sp("s1")), key(&sp("s2")));
    // Same string as secret and as assertion: different modes, different keys.
    assert_ne!(key(&sp("x")), key(&wi("x")));
    let mut other_tenant = target();
    other_tenant.tenant_id = "tenant-2".into();
    assert_ne!(
        key(&sp("s1")),
        p.cache_key(&req(&sp("s1"), &other_tenant)).unwrap()
    );
    let mut other_authority = target();
    other_authority.authority_host = "https://login.microsoftonline.us/".into();
    assert_ne!(
        key(&sp("s1")),
        p.cache_key(&req(&sp("s1"), &other_authority)).unwrap()
    );
    let system = IdentityMode::VmManagedIdentity {
        user_assigned: None,
    };
    let by_client = IdentityMode::VmManagedIdentity {
        user_assigned: Some(UserAssignedIdentity::ClientId("a".into())),
    };
    let by_res = IdentityMode::VmManagedIdentity {
        user_assigned: Some(UserAssignedIdentity::ResourceId("a".into())),
    };
    assert_ne!(key(&system), key(&by_client));
    assert_ne!(key(&by_client), key(&by_res));
    let nmi = IdentityMode::PodIdentity;
    let mut other_pod = req(&nmi, &t);
    other_pod.pod.uid = "uid-1";
    assert_ne!(key(&nmi), p.cache_key(&other_pod).unwrap());
}

#[tokio::test]
async fn service_principal_wire_shape_and_warm_hit() {
    let fake = Fake::new(ENTRA_OK);
    let p = provider(&fake);
    let t = target();
    let id = sp("s3cret");
    let tok = p.token(&req(&id, &t), deadline()).await.unwrap();
    assert_eq!(tok.token.expose(), "AT");
    p.token(&req(&id, &t), deadline()).await.unwrap();
    assert_eq!(fake.count(), 1, "warm Mount must not request a token");
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen[0].method, AuthMethod::Post);
    assert_eq!(
        seen[0].url,
        "https://login.microsoftonline.com/tenant-1/oauth2/v2.0/token"
    );
    assert_eq!(
        seen[0].form.as_deref(),
        Some(
            "grant_type=client_credentials&client_id=cid&client_secret=s3cret&scope=https%3A%2F%2Fvault.azure.net%2F.default"
        )
    );
    let s = p.stats(ModeLabel::ServicePrincipal);
    assert_eq!((s.misses, s.hits, s.requests_ok), (1, 1, 1));
}

#[tokio::test]
async fn two_service_account_tokens_two_requests() {
    let fake = Fake::new(ENTRA_OK);
    let p = provider(&fake);
    let t = target();
    p.token(&req(&wi("jwt-a"), &t), deadline()).await.unwrap();
    p.token(&req(&wi("jwt-b"), &t), deadline()).await.unwrap();
    p.token(&req(&wi("jwt-a"), &t), deadline()).await.unwrap();
    assert_eq!(fake.count(), 2);
    let seen = fake.seen.lock().unwrap();
    assert!(seen[0].form.as_deref().unwrap().contains(
        "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=jwt-a&client_id=cid"
    ));
}

#[tokio::test]
async fn refresh_near_expiry_with_controlled_clock() {
    let fake = Fake::new(ENTRA_OK);
    let now = Arc::new(Mutex::new(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
    ));
    let clock: Clock = {
        let now = now.clone();
        Arc::new(move || *now.lock().unwrap())
    };
    let p = TokenProvider::new(
        fake.clone(),
        TokenProviderOptions {
            retry: fast_retry(),
            clock,
            ..Default::default()
        },
    );
    let t = target();
    let id = sp("s");
    p.token(&req(&id, &t), deadline()).await.unwrap();
    *now.lock().unwrap() += Duration::from_secs(3599 - 301);
    p.token(&req(&id, &t), deadline()).await.unwrap();
    assert_eq!(fake.count(), 1);
    *now.lock().unwrap() += Duration::from_secs(2);
    p.token(&req(&id, &t), deadline()).await.unwrap();
    assert_eq!(fake.count(), 2);
}

#[tokio::test]
async fn concurrent_mounts_share_one_request() {
    let fake = Fake::new(ENTRA_OK);
    let p = Arc::new(provider(&fake));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            let t = target();
            let id = wi("same");
            p.token(&req(&id, &t), deadline()).await.map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(fake.count(), 1);
}

#[tokio::test]
async fn entra_429_then_success() {
    let fake = Fake::new(ENTRA_OK).then(Ok((429, Some(Duration::from_millis(1)), "{}")));
    let p = provider(&fake);
    let t = target();
    p.token(&req(&sp("s"), &t), deadline()).await.unwrap();
    assert_eq!(fake.count(), 2);
}

#[tokio::test]
async fn entra_429_persistent_is_resource_exhausted() {
    let fake = Fake::new(Ok((429, Some(Duration::from_secs(3)), "")));
    let p = TokenProvider::new(
        fake.clone(),
        TokenProviderOptions {
            retry: RetryPolicy {
                max_backoff: Duration::from_millis(2),
                ..fast_retry()
            },
            ..Default::default()
        },
    );
    let t = target();
    let e = p.token(&req(&sp("s"), &t), deadline()).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::ResourceExhausted);
    assert_eq!(fake.count(), 3);
    assert!(e.to_string().contains("advised wait 3s"), "{e}");
    // Errors are not cached.
    p.token(&req(&sp("s"), &t), deadline()).await.unwrap_err();
    assert_eq!(fake.count(), 6);
}

#[tokio::test]
async fn entra_rejection_is_unauthenticated_and_free_of_secrets() {
    let fake = Fake::new(Ok((
        401,
        None,
        r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x"}"#,
    )));
    let p = provider(&fake);
    let t = target();
    let e = p
        .token(&req(&sp("VERYSECRET"), &t), deadline())
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Unauthenticated);
    assert_eq!(fake.count(), 1, "4xx is not retried");
    let m = e.to_string();
    assert!(
        m.contains("AADSTS7000215") && !m.contains("VERYSECRET"),
        "{m}"
    );
    assert!(!format!("{e:?}").contains("VERYSECRET"));
}

#[tokio::test]
async fn connect_failure_is_unavailable_after_retries() {
    let fake = Fake::new(Err(TransportError::Connect("connection refused".into())));
    let p = provider(&fake);
    let t = target();
    let id = IdentityMode::PodIdentity;
    let e = p.token(&req(&id, &t), deadline()).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Unavailable);
    assert_eq!(fake.count(), 3);
    assert_eq!(
        e.to_string(),
        "NMI is not reachable at http://localhost:2579: connection failed: connection refused (is aad-pod-identity NMI running on this node, and does the provider run with hostNetwork: true?)"
    );
}

#[tokio::test]
async fn deadline_is_respected() {
    let fake = Fake::new(Err(TransportError::Connect("refused".into())));
    let p = TokenProvider::new(
        fake.clone(),
        TokenProviderOptions {
            retry: RetryPolicy {
                max_attempts: 100,
                initial_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(50),
                attempt_timeout: Duration::from_secs(1),
            },
            ..Default::default()
        },
    );
    let t = target();
    let started = Instant::now();
    let e = p
        .token(
            &req(&sp("s"), &t),
            Instant::now() + Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(
            e.class(),
            ErrorClass::Unavailable | ErrorClass::DeadlineExceeded
        ),
        "{e}"
    );
}

#[tokio::test]
async fn imds_wire_shape_and_cache() {
    let fake = Fake::new(IMDS_OK);
    let p = provider(&fake);
    let t = target();
    let id = IdentityMode::VmManagedIdentity {
        user_assigned: Some(UserAssignedIdentity::ClientId("uami".into())),
    };
    p.token(&req(&id, &t), deadline()).await.unwrap();
    p.token(&req(&id, &t), deadline()).await.unwrap();
    assert_eq!(fake.count(), 1);
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen[0].method, AuthMethod::Get);
    assert_eq!(
        seen[0].url,
        "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net&client_id=uami"
    );
    assert_eq!(seen[0].headers, vec![("Metadata", "true".to_owned())]);
}

#[tokio::test]
async fn imds_multiple_identities() {
    let fake = Fake::new(Ok((
        400,
        None,
        r#"{"error":"invalid_request","error_description":"Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request"}"#,
    )));
    let p = provider(&fake);
    let t = target();
    let id = IdentityMode::VmManagedIdentity {
        user_assigned: None,
    };
    let e = p.token(&req(&id, &t), deadline()).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Unauthenticated);
    assert!(e.to_string().ends_with(
        "; set userAssignedIdentityID (exact spelling) to the identity's client ID or resource ID"
    ));
}

#[tokio::test]
async fn nmi_wire_shape_cache_and_pod_separation() {
    let fake = Fake::new(NMI_OK);
    let p = provider(&fake);
    let t = target();
    let id = IdentityMode::PodIdentity;
    p.token(&req(&id, &t), deadline()).await.unwrap();
    p.token(&req(&id, &t), deadline()).await.unwrap();
    assert_eq!(fake.count(), 1);
    let mut other = req(&id, &t);
    other.pod.name = "pod-1";
    p.token(&other, deadline()).await.unwrap();
    assert_eq!(fake.count(), 2);
    let seen = fake.seen.lock().unwrap();
    assert_eq!(
        seen[0].url,
        "http://localhost:2579/host/token/?resource=https://vault.azure.net"
    );
    assert_eq!(
        seen[0].headers,
        vec![("podns", "ns".to_owned()), ("podname", "pod-0".to_owned())]
    );
}

#[tokio::test]
async fn nmi_errors() {
    let fake = Fake::new(Ok((403, None, "no AzureIdentityBinding for pod ns/pod-0")));
    let p = provider(&fake);
    let t = target();
    let id = IdentityMode::PodIdentity;
    let e = p.token(&req(&id, &t), deadline()).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "nmi response failed with status code: 403, response body: no AzureIdentityBinding for pod ns/pod-0"
    );
    assert_eq!(fake.count(), 1);
    let mut no_pod = req(&id, &t);
    no_pod.pod = PodRef::default();
    let e = p.token(&no_pod, deadline()).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::FailedPrecondition);
    assert_eq!(
        e.to_string(),
        "pod information is not available. deploy a CSIDriver object to set podInfoOnMount: true"
    );
}

#[tokio::test]
async fn identity_binding_goes_to_the_proxy() {
    let default_transport = Fake::new(ENTRA_OK);
    let proxy_transport = Fake::new(ENTRA_OK);
    let p = TokenProvider::new(
        default_transport.clone(),
        TokenProviderOptions {
            retry: fast_retry(),
            token_proxy: Some(TokenProxySetup::from(TokenProxy {
                url: "https://kubernetes.default.svc.cluster.local".into(),
                sni_name: "a1.ests.aks".into(),
                transport: Ok(proxy_transport.clone()),
            })),
            ..Default::default()
        },
    );
    let t = target();
    let id = IdentityMode::AzureTokenProxy {
        client_id: "cid".into(),
        service_account_token: "binding-jwt".into(),
    };
    p.token(&req(&id, &t), deadline()).await.unwrap();
    p.token(&req(&id, &t), deadline()).await.unwrap();
    assert_eq!(default_transport.count(), 0);
    assert_eq!(proxy_transport.count(), 1);
    let seen = proxy_transport.seen.lock().unwrap();
    assert_eq!(
        seen[0].url,
        "https://kubernetes.default.svc.cluster.local/tenant-1/oauth2/v2.0/token"
    );
    assert!(
        seen[0]
            .form
            .as_deref()
            .unwrap()
            .contains("client_assertion=binding-jwt")
    );
}

#[tokio::test]
async fn identity_binding_without_transport() {
    let fake = Fake::new(ENTRA_OK);
    let p = TokenProvider::new(
        fake.clone(),
        TokenProviderOptions {
            token_proxy: Some(TokenProxySetup::from(TokenProxy {
                url: "https://x".into(),
                sni_name: String::new(),
                transport: Err(
                    "cannot read /var/run/secrets/kubernetes.io/serviceaccount/ca.crt".into(),
                ),
            })),
            ..Default::default()
        },
    );
    let t = target();
    let id = IdentityMode::AzureTokenProxy {
        client_id: "cid".into(),
        service_account_token: "jwt".into(),
    };
    let e = p.token(&req(&id, &t), deadline()).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::FailedPrecondition);
    assert_eq!(
        e.to_string(),
        "proxy transport not available: cannot read /var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    );
    assert_eq!(fake.count(), 0);
}

/// A setup whose SNI discovery ends when `release` fires.
fn discovering(transport: Arc<Fake>) -> (TokenProxySetup, tokio::sync::oneshot::Sender<()>) {
    use futures::FutureExt;
    let (release, wait) = tokio::sync::oneshot::channel::<()>();
    let pending = async move {
        let _ = wait.await;
        TokenProxy {
            url: "https://kubernetes.default.svc.cluster.local".into(),
            sni_name: "a1.ests.aks".into(),
            transport: Ok(transport as Arc<dyn AuthTransport>),
        }
    }
    .boxed()
    .shared();
    (TokenProxySetup::Discovering(pending), release)
}

#[tokio::test]
async fn identity_binding_waits_for_sni_discovery() {
    let proxy_transport = Fake::new(ENTRA_OK);
    let (setup, release) = discovering(proxy_transport.clone());
    let p = TokenProvider::new(
        Fake::new(ENTRA_OK),
        TokenProviderOptions {
            retry: fast_retry(),
            token_proxy: Some(setup),
            ..Default::default()
        },
    );
    let t = target();
    let id = IdentityMode::AzureTokenProxy {
        client_id: "cid".into(),
        service_account_token: "jwt".into(),
    };
    // Other modes do not wait for discovery.
    p.token(&req(&sp("s"), &t), deadline()).await.unwrap();
    let ib = req(&id, &t);
    let waiting = p.token(&ib, deadline());
    tokio::pin!(waiting);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), &mut waiting)
            .await
            .is_err()
    );
    release.send(()).unwrap();
    waiting.await.unwrap();
    assert_eq!(proxy_transport.count(), 1);
}

#[tokio::test]
async fn identity_binding_deadline_while_discovering() {
    let proxy_transport = Fake::new(ENTRA_OK);
    let (setup, _release) = discovering(proxy_transport.clone());
    let p = TokenProvider::new(
        Fake::new(ENTRA_OK),
        TokenProviderOptions {
            token_proxy: Some(setup),
            ..Default::default()
        },
    );
    let t = target();
    let id = IdentityMode::AzureTokenProxy {
        client_id: "cid".into(),
        service_account_token: "jwt".into(),
    };
    let e = p
        .token(&req(&id, &t), Instant::now() + Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::DeadlineExceeded);
    assert_eq!(proxy_transport.count(), 0);
}

#[tokio::test]
async fn invalid_tenant_is_rejected_before_sending() {
    let fake = Fake::new(ENTRA_OK);
    let p = provider(&fake);
    let mut t = target();
    t.tenant_id = "a/b".into();
    let e = p.token(&req(&sp("s"), &t), deadline()).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::InvalidArgument);
    assert_eq!(fake.count(), 0);
}

/// One request of a cache-separation case: identity, target and pod.
type Side = (IdentityMode, TokenTarget, PodRef<'static>);

fn side(identity: IdentityMode) -> Side {
    (identity, target(), pod())
}

fn sp_as(client_id: &str, secret: &str) -> IdentityMode {
    IdentityMode::ServicePrincipal {
        client_id: client_id.into(),
        client_secret: secret.into(),
    }
}

fn wi_as(client_id: &str, token: &str) -> IdentityMode {
    IdentityMode::WorkloadIdentity {
        client_id: client_id.into(),
        service_account_token: token.into(),
    }
}

fn ib_as(client_id: &str, token: &str) -> IdentityMode {
    IdentityMode::AzureTokenProxy {
        client_id: client_id.into(),
        service_account_token: token.into(),
    }
}

fn vm_as(user_assigned: Option<UserAssignedIdentity>) -> IdentityMode {
    IdentityMode::VmManagedIdentity { user_assigned }
}

/// The base side with its target changed by `f`.
fn with_target(identity: IdentityMode, f: fn(&mut TokenTarget)) -> Side {
    let mut s = side(identity);
    f(&mut s.1);
    s
}

/// The base side with its pod changed by `f`.
fn with_pod(identity: IdentityMode, f: fn(&mut PodRef<'static>)) -> Side {
    let mut s = side(identity);
    f(&mut s.2);
    s
}

fn other_authority(t: &mut TokenTarget) {
    t.authority_host = "https://login.microsoftonline.us/".into();
}
fn other_tenant(t: &mut TokenTarget) {
    t.tenant_id = "tenant-2".into();
}
fn other_resource(t: &mut TokenTarget) {
    t.resource = "https://vault.usgovcloudapi.net".into();
}

/// Every per-Mount field of every mode's cache key: two requests that differ only in that field
/// must each reach the token endpoint (a shared entry would hand the first caller's token to the
/// second).
fn separation_cases() -> Vec<(&'static str, Side, Side)> {
    let ua = |c: &str| Some(UserAssignedIdentity::ClientId(c.into()));
    let ur = |r: &str| Some(UserAssignedIdentity::ResourceId(r.into()));
    let mut cases = vec![];
    for (mode, make) in [
        ("service_principal", sp_as as fn(&str, &str) -> IdentityMode),
        ("workload_identity", wi_as),
        ("identity_binding", ib_as),
    ] {
        let base = || make("client-a", "credential-a");
        cases.extend([
            (mode, side(base()), side(make("client-b", "credential-a"))),
            (mode, side(base()), side(make("client-a", "credential-b"))),
            (mode, side(base()), with_target(base(), other_authority)),
            (mode, side(base()), with_target(base(), other_tenant)),
            (mode, side(base()), with_target(base(), other_resource)),
        ]);
    }
    cases.extend([
        (
            "vm_managed_identity",
            side(vm_as(None)),
            side(vm_as(ua("a"))),
        ),
        (
            "vm_managed_identity",
            side(vm_as(ua("a"))),
            side(vm_as(ua("b"))),
        ),
        (
            "vm_managed_identity",
            side(vm_as(ur("a"))),
            side(vm_as(ur("b"))),
        ),
        (
            "vm_managed_identity",
            side(vm_as(ua("a"))),
            side(vm_as(ur("a"))),
        ),
        (
            "vm_managed_identity",
            side(vm_as(ua("a"))),
            with_target(vm_as(ua("a")), other_resource),
        ),
        (
            "pod_identity",
            side(IdentityMode::PodIdentity),
            with_pod(IdentityMode::PodIdentity, |p| p.namespace = "ns-2"),
        ),
        (
            "pod_identity",
            side(IdentityMode::PodIdentity),
            with_pod(IdentityMode::PodIdentity, |p| p.name = "pod-2"),
        ),
        (
            "pod_identity",
            side(IdentityMode::PodIdentity),
            with_pod(IdentityMode::PodIdentity, |p| p.uid = "uid-2"),
        ),
        (
            "pod_identity",
            side(IdentityMode::PodIdentity),
            with_target(IdentityMode::PodIdentity, other_resource),
        ),
    ]);
    cases
}

fn reply_for(identity: &IdentityMode) -> Reply {
    match identity {
        IdentityMode::VmManagedIdentity { .. } => IMDS_OK,
        IdentityMode::PodIdentity => NMI_OK,
        _ => ENTRA_OK,
    }
}

#[tokio::test]
async fn every_cache_key_field_separates_tokens() {
    let cases = separation_cases();
    assert_eq!(cases.len(), 24);
    for (mode, a, b) in cases {
        let fake = Fake::new(reply_for(&a.0));
        let p = TokenProvider::new(
            fake.clone(),
            TokenProviderOptions {
                retry: fast_retry(),
                token_proxy: Some(TokenProxySetup::from(TokenProxy {
                    url: "https://kubernetes.default.svc.cluster.local".into(),
                    sni_name: "a1.ests.aks".into(),
                    transport: Ok(fake.clone() as Arc<dyn AuthTransport>),
                })),
                ..Default::default()
            },
        );
        let ra = TokenRequest {
            identity: &a.0,
            target: &a.1,
            pod: a.2,
        };
        let rb = TokenRequest {
            identity: &b.0,
            target: &b.1,
            pod: b.2,
        };
        // Sanity: the same request twice is one token request.
        p.token(&ra, deadline()).await.unwrap();
        p.token(&ra, deadline()).await.unwrap();
        assert_eq!(fake.count(), 1, "{mode}: {ra:?}");
        p.token(&rb, deadline()).await.unwrap();
        assert_eq!(
            fake.count(),
            2,
            "{mode}: {rb:?} was served the token cached for {ra:?}"
        );
        assert_ne!(
            p.cache_key(&ra).unwrap(),
            p.cache_key(&rb).unwrap(),
            "{mode}"
        );
    }
}

/// Process-wide settings that select another token service are part of the keys too (two
/// providers never share a cache, but a key is a digest that must not depend on that).
#[test]
fn cache_keys_include_the_endpoints() {
    let t = target();
    let key = |options: TokenProviderOptions, identity: &IdentityMode| {
        TokenProvider::new(Fake::new(ENTRA_OK), options)
            .cache_key(&req(identity, &t))
            .unwrap()
    };
    let ib = |url: &str, sni: &str| TokenProviderOptions {
        token_proxy: Some(TokenProxySetup::from(TokenProxy {
            url: url.into(),
            sni_name: sni.into(),
            transport: Ok(Fake::new(ENTRA_OK) as Arc<dyn AuthTransport>),
        })),
        ..Default::default()
    };
    let id = ib_as("c", "t");
    assert_ne!(
        key(ib("https://a", "s"), &id),
        key(ib("https://b", "s"), &id)
    );
    assert_ne!(
        key(ib("https://a", "s"), &id),
        key(ib("https://a", "z"), &id)
    );
    let vm = vm_as(None);
    let imds = |e: &str| TokenProviderOptions {
        imds_endpoint: e.into(),
        ..Default::default()
    };
    assert_ne!(key(imds("http://a"), &vm), key(imds("http://b"), &vm));
    let nmi = |e: &str| TokenProviderOptions {
        nmi_endpoint: e.into(),
        ..Default::default()
    };
    let pi = IdentityMode::PodIdentity;
    assert_ne!(key(nmi("http://a"), &pi), key(nmi("http://b"), &pi));
}
