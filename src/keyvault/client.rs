//! HTTP implementation of the Key Vault calls: URL building, retries with throttling-aware
//! backoff inside the Mount deadline, per-vault concurrency limits, bounded response bodies and
//! error classification.

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use url::Url;

use super::model::{
    CertificateBundle, ErrorBody, KeyBundle, SecretBundle, VersionItem, VersionPage,
};
use super::object_cache::ObjectCache;
use super::{KeyVaultError, KeyVaultErrorKind, ObjectKind, ObjectRef};
use crate::http::{HttpClient, TransportFailure, bearer_header, classify_transport_error};
use crate::secret::{SecretBytes, SecretString};

/// Key Vault REST API version used for every call (behaviour parity with the reference).
pub const KEYVAULT_API_VERSION: &str = "7.4";

/// Default cap on a Key Vault response body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Longest service message kept in an error (Key Vault messages hold no secrets, but are unbounded).
const MAX_SERVICE_MESSAGE_CHARS: usize = 400;

/// Most pages followed for one version list (protects against a nextLink loop).
const MAX_VERSION_PAGES: usize = 200;

/// Retry, throttling and resource limits of Key Vault calls.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Retries after the first attempt (each also bounded by the deadline).
    pub max_retries: u32,
    /// Base of the exponential backoff (the cap of attempt `n` is `base * 2^n`).
    pub base_delay: Duration,
    /// Largest computed backoff (a longer `Retry-After` is still honoured within the deadline).
    pub max_delay: Duration,
    /// Time allowed for one attempt (request and body).
    pub per_try_timeout: Duration,
    /// Concurrent requests per vault host, shared by all Mounts of this process.
    pub max_concurrent_per_vault: usize,
    /// Largest accepted response body.
    pub max_body_bytes: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            base_delay: Duration::from_millis(800),
            max_delay: Duration::from_secs(60),
            per_try_timeout: Duration::from_secs(30),
            max_concurrent_per_vault: 64,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

impl RetryPolicy {
    /// Upper bound of the full-jitter backoff before retry number `retry` (0-based).
    pub fn backoff_cap(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// Full-jitter backoff: uniformly random in `[0, backoff_cap(retry)]`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let cap = self.backoff_cap(retry);
        let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::random_range(0..=millis))
    }
}

/// Observable counters (metrics are built on top later).
#[derive(Debug, Default)]
pub struct KeyVaultStats {
    /// HTTP attempts sent.
    pub attempts: AtomicU64,
    /// Retries performed (attempts after the first).
    pub retries: AtomicU64,
    /// 429 responses received.
    pub throttled_responses: AtomicU64,
    /// Times a request waited on a vault's "throttled until" gate.
    pub throttle_gate_waits: AtomicU64,
    /// Calls failed because the next wait would pass the deadline.
    pub budget_exhausted: AtomicU64,
    /// GETs that joined an identical request already in flight instead of sending their own.
    pub coalesced: AtomicU64,
}

/// A copy of [`KeyVaultStats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyVaultStatsSnapshot {
    /// HTTP attempts sent.
    pub attempts: u64,
    /// Retries performed.
    pub retries: u64,
    /// 429 responses received.
    pub throttled_responses: u64,
    /// Waits on a throttle gate.
    pub throttle_gate_waits: u64,
    /// Calls failed because the next wait would pass the deadline.
    pub budget_exhausted: u64,
    /// GETs that joined an identical request in flight.
    pub coalesced: u64,
}

impl KeyVaultStats {
    /// Reads all counters.
    pub fn snapshot(&self) -> KeyVaultStatsSnapshot {
        KeyVaultStatsSnapshot {
            attempts: self.attempts.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            throttled_responses: self.throttled_responses.load(Ordering::Relaxed),
            throttle_gate_waits: self.throttle_gate_waits.load(Ordering::Relaxed),
            budget_exhausted: self.budget_exhausted.load(Ordering::Relaxed),
            coalesced: self.coalesced.load(Ordering::Relaxed),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Per-vault-host shared state: concurrency limit and throttle gate.
struct HostState {
    permits: Semaphore,
    throttled_until: Mutex<Option<Instant>>,
}

impl HostState {
    fn gate(&self) -> Option<Instant> {
        let now = Instant::now();
        self.throttled_until
            .lock()
            .ok()
            .and_then(|g| *g)
            .filter(|t| *t > now)
    }

    fn throttle(&self, until: Instant) {
        if let Ok(mut g) = self.throttled_until.lock() {
            *g = Some(g.map_or(until, |cur| cur.max(until)));
        }
    }
}

/// Who a call is made for: the bearer token and, when the caller's credential was accepted for a
/// principal, that principal's digest (the object-cache scope, see [`ObjectCache`]).
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    /// The access token sent to Key Vault.
    pub token: &'a SecretString,
    /// Object-cache partition; `None` never reads or fills the cache.
    pub scope: Option<&'a [u8; 32]>,
}

impl<'a> From<&'a SecretString> for Caller<'a> {
    fn from(token: &'a SecretString) -> Self {
        Self { token, scope: None }
    }
}

/// A GET in flight, shared by every identical request that arrives meanwhile.
type InflightGet = Shared<BoxFuture<'static, Result<SecretBytes, KeyVaultError>>>;

/// Identical GETs: same URL (vault, collection, name, version) and the same
/// access token. Keying by the token's digest keeps Key Vault's authorization
/// per principal: a request only joins one made with its own token. With the
/// object cache on, the second part is the object-cache scope instead (the
/// principal this caller's credential was accepted for), so one GET serves a
/// wave of replicas exactly as the cache entry it fills will.
type InflightKey = (String, [u8; 32]);

/// Key Vault REST client. Cheap to clone; clones share pools, limits, gates and counters.
#[derive(Clone)]
pub struct KeyVaultClient {
    http: HttpClient,
    retry: RetryPolicy,
    hosts: Arc<Mutex<HashMap<String, Arc<HostState>>>>,
    stats: Arc<KeyVaultStats>,
    inflight: Arc<Mutex<HashMap<InflightKey, InflightGet>>>,
    object_cache: Option<Arc<ObjectCache>>,
}

impl fmt::Debug for KeyVaultClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVaultClient")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// What one attempt produced.
enum Attempt {
    Done(SecretBytes),
    Retry {
        advised: Option<Duration>,
        last: Failure,
    },
    Fail(KeyVaultErrorKind),
}

/// The last retryable failure, reported when retries or the budget run out.
enum Failure {
    Status {
        status: u16,
        body: Option<ErrorBody>,
        advised: Option<Duration>,
    },
    Transport {
        failure: TransportFailure,
        source: reqwest::Error,
    },
}

impl KeyVaultClient {
    /// Creates a client over the shared HTTP client.
    pub fn new(http: HttpClient, retry: RetryPolicy) -> Self {
        Self {
            http,
            retry,
            hosts: Arc::new(Mutex::new(HashMap::new())),
            stats: Arc::new(KeyVaultStats::default()),
            inflight: Arc::new(Mutex::new(HashMap::new())),
            object_cache: None,
        }
    }

    /// Reuses successful responses for callers with a scope (`--object-cache-ttl`).
    #[must_use]
    pub fn with_object_cache(mut self, cache: Option<Arc<ObjectCache>>) -> Self {
        self.object_cache = cache;
        self
    }

    /// The object cache, when enabled.
    pub fn object_cache(&self) -> Option<&ObjectCache> {
        self.object_cache.as_deref()
    }

    /// The cache and the caller's scope, when both exist.
    fn cache_scope<'c>(&'c self, caller: &Caller<'c>) -> Option<(&'c ObjectCache, &'c [u8; 32])> {
        self.object_cache.as_deref().zip(caller.scope)
    }

    /// Retry and throttling counters.
    pub fn stats(&self) -> &KeyVaultStats {
        &self.stats
    }

    /// `GET /secrets/{name}/{version}`; `version` `None` or empty means latest.
    ///
    /// # Errors
    ///
    /// [`KeyVaultError`] with the object context; see [`KeyVaultError::class`].
    pub async fn get_secret(
        &self,
        vault_url: &str,
        name: &str,
        version: Option<&str>,
        token: impl Into<Caller<'_>>,
        deadline: Instant,
    ) -> Result<SecretBundle, KeyVaultError> {
        let obj = ObjectRef::new(ObjectKind::Secret, vault_url, name, version);
        self.get_bundle(&obj, vault_url, token.into(), deadline)
            .await
    }

    /// `GET /keys/{name}/{version}`.
    ///
    /// # Errors
    ///
    /// [`KeyVaultError`] with the object context.
    pub async fn get_key(
        &self,
        vault_url: &str,
        name: &str,
        version: Option<&str>,
        token: impl Into<Caller<'_>>,
        deadline: Instant,
    ) -> Result<KeyBundle, KeyVaultError> {
        let obj = ObjectRef::new(ObjectKind::Key, vault_url, name, version);
        self.get_bundle(&obj, vault_url, token.into(), deadline)
            .await
    }

    /// `GET /certificates/{name}/{version}`.
    ///
    /// # Errors
    ///
    /// [`KeyVaultError`] with the object context.
    pub async fn get_certificate(
        &self,
        vault_url: &str,
        name: &str,
        version: Option<&str>,
        token: impl Into<Caller<'_>>,
        deadline: Instant,
    ) -> Result<CertificateBundle, KeyVaultError> {
        let obj = ObjectRef::new(ObjectKind::Certificate, vault_url, name, version);
        self.get_bundle(&obj, vault_url, token.into(), deadline)
            .await
    }

    /// GETs `obj` and decodes its JSON body.
    async fn get_bundle<T: serde::de::DeserializeOwned>(
        &self,
        obj: &ObjectRef,
        vault_url: &str,
        caller: Caller<'_>,
        deadline: Instant,
    ) -> Result<T, KeyVaultError> {
        let body = self.get_object(obj, vault_url, caller, deadline).await?;
        serde_json::from_slice(body.expose()).map_err(|e| obj.err(malformed(&e)))
    }

    /// `GET /{kind}/{name}/versions`, following `nextLink` (which must stay on the vault host).
    /// Items are returned in service order.
    ///
    /// # Errors
    ///
    /// [`KeyVaultError`] with the object context.
    pub async fn list_versions(
        &self,
        vault_url: &str,
        kind: ObjectKind,
        name: &str,
        token: impl Into<Caller<'_>>,
        deadline: Instant,
    ) -> Result<Vec<VersionItem>, KeyVaultError> {
        let caller = token.into();
        let mut obj = ObjectRef::new(kind, vault_url, name, None);
        obj.listing = true;
        let base = parse_vault_url(vault_url).map_err(|k| obj.err(k))?;
        let mut url = base.clone();
        {
            let mut segs = url
                .path_segments_mut()
                .map_err(|()| obj.err(KeyVaultErrorKind::InvalidVaultUrl))?;
            segs.pop_if_empty()
                .push(kind.path_segment())
                .push(name)
                .push("versions");
        }
        url.query_pairs_mut()
            .append_pair("api-version", KEYVAULT_API_VERSION);

        let mut items = Vec::new();
        for _ in 0..MAX_VERSION_PAGES {
            let body = self.get_page(&obj, &url, caller, deadline).await?;
            let page: VersionPage =
                serde_json::from_slice(body.expose()).map_err(|e| obj.err(malformed(&e)))?;
            items.extend(page.value);
            match page.next_link.filter(|l| !l.is_empty()) {
                None => return Ok(items),
                Some(link) => {
                    url = validate_next_link(&base, &link).map_err(|k| obj.err(k))?;
                }
            }
        }
        Err(obj.err(KeyVaultErrorKind::Malformed {
            detail: format!("more than {MAX_VERSION_PAGES} pages of versions"),
        }))
    }

    /// One page of a version listing, from the object cache when the caller has a scope.
    async fn get_page(
        &self,
        obj: &ObjectRef,
        url: &Url,
        caller: Caller<'_>,
        deadline: Instant,
    ) -> Result<SecretBytes, KeyVaultError> {
        let cached = self.cache_scope(&caller);
        if let Some((cache, scope)) = cached
            && let Some(body) = cache.get(scope, url.as_str())
        {
            return Ok(body);
        }
        let body = self.execute(obj, url, caller.token, deadline).await?;
        if let Some((cache, scope)) = cached {
            cache.insert(scope, url.as_str(), &body);
        }
        Ok(body)
    }

    async fn get_object(
        &self,
        obj: &ObjectRef,
        vault_url: &str,
        caller: Caller<'_>,
        deadline: Instant,
    ) -> Result<SecretBytes, KeyVaultError> {
        let url = object_url(vault_url, obj.kind, &obj.name, obj.version.as_deref())
            .map_err(|k| obj.err(k))?;
        let token = caller.token;
        let cached = self.cache_scope(&caller);
        if let Some((cache, scope)) = cached
            && let Some(body) = cache.get(scope, url.as_str())
        {
            return Ok(body);
        }
        // Concurrent Mounts of one workload ask for the same objects at the same
        // time (replicas starting together, republish waves): send one GET.
        // The joined request runs under the first caller's deadline.
        let key: InflightKey = (
            url.as_str().to_owned(),
            match cached {
                Some((_, scope)) => *scope,
                None => Sha256::digest(token.expose().as_bytes()).into(),
            },
        );
        let shared = {
            let mut inflight = match self.inflight.lock() {
                Ok(m) => m,
                Err(poisoned) => poisoned.into_inner(),
            };
            // An entry whose every waiter was cancelled (only the map holds it)
            // is replaced, so nobody inherits a dead caller's deadline.
            if let Some(existing) = inflight.get(&key).filter(|f| f.strong_count() != Some(1)) {
                bump(&self.stats.coalesced);
                existing.clone()
            } else {
                let this = self.clone();
                let obj = obj.clone();
                let token = token.clone();
                let scope = cached.map(|(_, scope)| *scope);
                let fut: InflightGet = async move {
                    let body = this.execute(&obj, &url, &token, deadline).await?;
                    // Filled once, by the request every joiner shares; errors never are.
                    if let (Some(cache), Some(scope)) = (&this.object_cache, scope) {
                        cache.insert(&scope, url.as_str(), &body);
                    }
                    Ok(body)
                }
                .boxed()
                .shared();
                inflight.insert(key.clone(), fut.clone());
                fut
            }
        };
        let result = shared.clone().await;
        let mut inflight = match self.inflight.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if inflight.get(&key).is_some_and(|f| f.ptr_eq(&shared)) {
            inflight.remove(&key);
        }
        result
    }

    fn host_state(&self, host: &str) -> Arc<HostState> {
        let mut hosts = match self.hosts.lock() {
            Ok(h) => h,
            Err(poisoned) => poisoned.into_inner(),
        };
        hosts
            .entry(host.to_ascii_lowercase())
            .or_insert_with(|| {
                Arc::new(HostState {
                    permits: Semaphore::new(self.retry.max_concurrent_per_vault.max(1)),
                    throttled_until: Mutex::new(None),
                })
            })
            .clone()
    }

    /// Runs one GET with retries; returns the 2xx body.
    async fn execute(
        &self,
        obj: &ObjectRef,
        url: &Url,
        token: &SecretString,
        deadline: Instant,
    ) -> Result<SecretBytes, KeyVaultError> {
        let auth = bearer_header(token).map_err(|_| obj.err(KeyVaultErrorKind::InvalidToken))?;
        let host = self.host_state(url.host_str().unwrap_or_default());
        let mut retry = 0u32;
        loop {
            if let Some(until) = host.gate() {
                bump(&self.stats.throttle_gate_waits);
                if until > deadline {
                    bump(&self.stats.budget_exhausted);
                    return Err(obj.err(KeyVaultErrorKind::Throttled {
                        advised_wait: Some(until.saturating_duration_since(Instant::now())),
                        attempts: retry,
                    }));
                }
                tokio::time::sleep_until(until).await;
            }
            let outcome = tokio::time::timeout_at(deadline, async {
                let _permit = host.permits.acquire().await;
                self.attempt(url, &auth, deadline).await
            })
            .await;
            let outcome = match outcome {
                Ok(o) => o,
                Err(_) => {
                    return Err(obj.err(KeyVaultErrorKind::Deadline {
                        advised_wait: None,
                        last: None,
                    }));
                }
            };
            let (wait, last) = match outcome {
                Attempt::Done(body) => return Ok(body),
                Attempt::Fail(kind) => return Err(obj.err(kind)),
                Attempt::Retry { advised, last } => {
                    (advised.unwrap_or_else(|| self.retry.backoff(retry)), last)
                }
            };
            if let Failure::Status { status: 429, .. } = last {
                bump(&self.stats.throttled_responses);
                host.throttle(Instant::now() + wait);
            }
            if retry >= self.retry.max_retries {
                return Err(obj.err(final_failure(last, retry + 1, None)));
            }
            if Instant::now() + wait > deadline {
                bump(&self.stats.budget_exhausted);
                return Err(obj.err(final_failure(last, retry + 1, Some(wait))));
            }
            tokio::time::sleep(wait).await;
            retry += 1;
            bump(&self.stats.retries);
        }
    }

    async fn attempt(
        &self,
        url: &Url,
        auth: &reqwest::header::HeaderValue,
        deadline: Instant,
    ) -> Attempt {
        bump(&self.stats.attempts);
        let remaining = deadline.saturating_duration_since(Instant::now());
        let per_try = self.retry.per_try_timeout.min(remaining);
        let sent = self
            .http
            .client()
            .get(url.clone())
            .header(AUTHORIZATION, auth.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(per_try)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return transport_outcome(e),
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = match read_limited(resp, self.retry.max_body_bytes).await {
            Ok(b) => b,
            Err(ReadError::TooLarge) => {
                return Attempt::Fail(KeyVaultErrorKind::TooLarge {
                    limit: self.retry.max_body_bytes,
                });
            }
            Err(ReadError::Transport(e)) => return transport_outcome(e),
        };
        if status.is_success() {
            return Attempt::Done(body);
        }
        // Error bodies never carry secret values; parse leniently.
        let parsed: Option<ErrorBody> = serde_json::from_slice(body.expose()).ok();
        if is_retryable_status(status) {
            let advised = retry_after(&headers, SystemTime::now());
            return Attempt::Retry {
                advised,
                last: Failure::Status {
                    status: status.as_u16(),
                    body: parsed,
                    advised,
                },
            };
        }
        let www = headers
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(www_authenticate_description);
        Attempt::Fail(service_error(status.as_u16(), parsed, www))
    }
}

fn transport_outcome(e: reqwest::Error) -> Attempt {
    {
        let failure = classify_transport_error(&e);
        match failure {
            // Neither a bad certificate nor a non-existent host fixes itself within a Mount.
            TransportFailure::Tls => Attempt::Fail(KeyVaultErrorKind::Unreachable {
                failure,
                source: Arc::new(e),
            }),
            TransportFailure::Dns if is_nxdomain(&e) => {
                Attempt::Fail(KeyVaultErrorKind::VaultNotFound)
            }
            _ => Attempt::Retry {
                advised: None,
                last: Failure::Transport { failure, source: e },
            },
        }
    }
}

/// True for 408, 429, 500, 502, 503, 504.
pub fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// Advised wait from `retry-after-ms`, `x-ms-retry-after-ms` or `Retry-After` (seconds or HTTP-date).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            return Some(Duration::from_millis(ms));
        }
    }
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now))
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP-date (past dates give zero).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The `error_description` of a `WWW-Authenticate: Bearer ...` header, if present.
fn www_authenticate_description(value: &str) -> Option<String> {
    let idx = value.find("error_description=")?;
    let rest = value.get(idx + "error_description=".len()..)?;
    let text = if let Some(stripped) = rest.strip_prefix('"') {
        stripped.split('"').next().unwrap_or_default()
    } else {
        rest.split(',').next().unwrap_or_default()
    };
    let text = text.trim();
    (!text.is_empty()).then(|| cap_message(text))
}

/// Builds `<vault>/<kind>/<name>/<version>?api-version=7.4` with encoded segments.
fn object_url(
    vault_url: &str,
    kind: ObjectKind,
    name: &str,
    version: Option<&str>,
) -> Result<Url, KeyVaultErrorKind> {
    let mut url = parse_vault_url(vault_url)?;
    {
        let mut segs = url
            .path_segments_mut()
            .map_err(|()| KeyVaultErrorKind::InvalidVaultUrl)?;
        segs.pop_if_empty()
            .push(kind.path_segment())
            .push(name)
            .push(version.unwrap_or(""));
    }
    url.query_pairs_mut()
        .append_pair("api-version", KEYVAULT_API_VERSION);
    Ok(url)
}

fn parse_vault_url(vault_url: &str) -> Result<Url, KeyVaultErrorKind> {
    let url = Url::parse(vault_url).map_err(|_| KeyVaultErrorKind::InvalidVaultUrl)?;
    if url.scheme() != "https" || url.host_str().is_none() || url.cannot_be_a_base() {
        return Err(KeyVaultErrorKind::InvalidVaultUrl);
    }
    Ok(url)
}

/// A `nextLink` must be https on the same host and port as the vault, so the bearer token is
/// never sent elsewhere.
fn validate_next_link(base: &Url, link: &str) -> Result<Url, KeyVaultErrorKind> {
    let next = Url::parse(link).map_err(|_| KeyVaultErrorKind::ForeignNextLink {
        host: "<unparsable>".to_owned(),
    })?;
    let same = next.scheme() == "https"
        && next
            .host_str()
            .zip(base.host_str())
            .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b))
        && next.port_or_known_default() == base.port_or_known_default();
    if !same {
        return Err(KeyVaultErrorKind::ForeignNextLink {
            host: next.host_str().unwrap_or("<none>").to_owned(),
        });
    }
    Ok(next)
}

enum ReadError {
    TooLarge,
    Transport(reqwest::Error),
}

/// Reads the body into a zeroizing buffer, refusing more than `limit` bytes.
async fn read_limited(mut resp: reqwest::Response, limit: usize) -> Result<SecretBytes, ReadError> {
    if resp
        .content_length()
        .is_some_and(|len| len > u64::try_from(limit).unwrap_or(u64::MAX))
    {
        return Err(ReadError::TooLarge);
    }
    let mut buf = SecretBytes::new(Vec::new());
    while let Some(chunk) = resp.chunk().await.map_err(ReadError::Transport)? {
        if buf.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge);
        }
        // Grow through a fresh zeroizing buffer so no reallocation leaves copies behind.
        let mut next = Vec::with_capacity((buf.len() + chunk.len()).max(buf.len() * 2));
        next.extend_from_slice(buf.expose());
        next.extend_from_slice(&chunk);
        buf = SecretBytes::new(next);
    }
    Ok(buf)
}

fn malformed(e: &serde_json::Error) -> KeyVaultErrorKind {
    // serde_json messages can quote input fragments; keep only the category and position.
    KeyVaultErrorKind::Malformed {
        detail: format!(
            "response is not the expected JSON ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ),
    }
}

fn cap_message(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= MAX_SERVICE_MESSAGE_CHARS {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(MAX_SERVICE_MESSAGE_CHARS).collect();
    out.push('…');
    out
}

fn service_error(status: u16, body: Option<ErrorBody>, www: Option<String>) -> KeyVaultErrorKind {
    let detail = body.map(|b| b.error).unwrap_or_default();
    KeyVaultErrorKind::Service {
        status,
        code: detail.code.map(|c| cap_message(&c)),
        inner_code: detail
            .innererror
            .and_then(|i| i.code)
            .map(|c| cap_message(&c)),
        message: detail.message.map(|m| cap_message(&m)),
        www_authenticate: www,
    }
}

fn final_failure(last: Failure, attempts: u32, next_wait: Option<Duration>) -> KeyVaultErrorKind {
    match last {
        Failure::Status {
            status: 429,
            advised,
            ..
        } => KeyVaultErrorKind::Throttled {
            advised_wait: next_wait.or(advised),
            attempts,
        },
        Failure::Status { status, body, .. } => match next_wait {
            Some(wait) => KeyVaultErrorKind::Deadline {
                advised_wait: Some(wait),
                last: Some(format!("HTTP {status}")),
            },
            None => {
                let mut kind = service_error(status, body, None);
                if let KeyVaultErrorKind::Service { .. } = kind {
                    kind = KeyVaultErrorKind::RetriesExhausted {
                        status,
                        attempts,
                        inner: Box::new(kind),
                    };
                }
                kind
            }
        },
        Failure::Transport { failure, source } => match (next_wait, failure) {
            (Some(wait), TransportFailure::Timeout) => KeyVaultErrorKind::Deadline {
                advised_wait: Some(wait),
                last: Some("attempt timed out".to_owned()),
            },
            _ => KeyVaultErrorKind::Unreachable {
                failure,
                source: Arc::new(source),
            },
        },
    }
}

/// Resolver failures meaning "this name does not exist" (as opposed to a DNS outage).
fn is_nxdomain(err: &reqwest::Error) -> bool {
    [
        "Name or service not known",
        "No address associated with hostname",
        "nodename nor servname provided",
    ]
    .iter()
    .any(|needle| crate::http::chain_mentions(err, needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(7)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-4", now), None);
    }

    #[test]
    fn retry_after_ms_headers_win() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "10".parse().unwrap());
        assert_eq!(
            retry_after(&h, SystemTime::now()),
            Some(Duration::from_secs(10))
        );
        h.insert("x-ms-retry-after-ms", "250".parse().unwrap());
        assert_eq!(
            retry_after(&h, SystemTime::now()),
            Some(Duration::from_millis(250))
        );
    }

    #[test]
    fn backoff_bounds() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff_cap(0), Duration::from_millis(800));
        assert_eq!(p.backoff_cap(1), Duration::from_millis(1600));
        assert_eq!(p.backoff_cap(3), Duration::from_millis(6400));
        assert_eq!(p.backoff_cap(10), Duration::from_secs(60));
        assert_eq!(p.backoff_cap(u32::MAX), Duration::from_secs(60));
        for retry in 0..8 {
            for _ in 0..50 {
                assert!(p.backoff(retry) <= p.backoff_cap(retry));
            }
        }
    }

    #[test]
    fn retryable_statuses() {
        for s in [408u16, 429, 500, 502, 503, 504] {
            assert!(is_retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400u16, 401, 403, 404, 409, 501] {
            assert!(
                !is_retryable_status(StatusCode::from_u16(s).unwrap()),
                "{s}"
            );
        }
    }

    #[test]
    fn urls_encode_segments() {
        let u = object_url(
            "https://kv.vault.azure.net/",
            ObjectKind::Secret,
            "db-password",
            None,
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "https://kv.vault.azure.net/secrets/db-password/?api-version=7.4"
        );
        let u = object_url(
            "https://kv.vault.azure.net",
            ObjectKind::Certificate,
            "a b/c?",
            Some("v1"),
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "https://kv.vault.azure.net/certificates/a%20b%2Fc%3F/v1?api-version=7.4"
        );
        assert!(object_url("http://kv/", ObjectKind::Key, "a", None).is_err());
    }

    #[test]
    fn next_link_must_stay_on_vault() {
        let base = Url::parse("https://kv.vault.azure.net/").unwrap();
        assert!(
            validate_next_link(
                &base,
                "https://kv.vault.azure.net:443/secrets/a/versions?api-version=7.3&$skiptoken=x"
            )
            .is_ok()
        );
        assert!(validate_next_link(&base, "https://KV.vault.azure.net/x").is_ok());
        for bad in [
            "https://evil.example/secrets/a/versions",
            "http://kv.vault.azure.net/secrets/a/versions",
            "https://kv.vault.azure.net:8443/x",
            "not a url",
        ] {
            assert!(validate_next_link(&base, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn www_authenticate_description_extracted() {
        let v = r#"Bearer authorization="https://login.microsoftonline.com/t", resource="https://vault.azure.net", error="invalid_token", error_description="The token is expired""#;
        assert_eq!(
            www_authenticate_description(v).as_deref(),
            Some("The token is expired")
        );
        assert_eq!(www_authenticate_description("Bearer realm=x"), None);
    }

    #[test]
    fn long_messages_are_capped() {
        let long = "x".repeat(5000);
        assert!(cap_message(&long).chars().count() <= MAX_SERVICE_MESSAGE_CHARS + 1);
    }
}
