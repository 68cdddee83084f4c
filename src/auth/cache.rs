//! Token cache shared by every Mount: keyed by a digest of the complete credential
//! material, reused until a safety margin before expiry, bounded, with single flight.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::{AccessToken, AuthError, ModeLabel};

/// Refresh when less than this is left, unless 10% of the lifetime is smaller.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Default bound on the number of cached tokens.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

/// SHA-256 digest of the complete credential material of one token request.
///
/// Built only from material the caller presented (secrets and tokens are hashed, never
/// stored), never from claims parsed out of an unverified token (beyond.md §1).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    /// The raw digest (safe to use as an identity dimension elsewhere, e.g. the object cache).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to correlate log lines; the digest reveals nothing anyway.
        write!(f, "CacheKey({})", hex::encode(&self.0[..6]))
    }
}

/// Accumulates length-prefixed fields so that `("ab","c")` and `("a","bc")` differ.
pub(crate) struct KeyBuilder(Sha256);

impl KeyBuilder {
    /// Starts a key for one identity mode.
    pub(crate) fn new(mode: &str) -> Self {
        let mut b = Self::with_domain("rust-azure-token-cache-v1");
        b.field(mode);
        b
    }

    /// Starts a digest of another kind (separate domains never collide with token-cache keys).
    pub(crate) fn with_domain(domain: &str) -> Self {
        let mut b = Self(Sha256::new());
        b.field(domain);
        b
    }

    /// Adds a non-secret field.
    pub(crate) fn field(&mut self, value: &str) -> &mut Self {
        self.0.update((value.len() as u64).to_be_bytes());
        self.0.update(value.as_bytes());
        self
    }

    /// Adds the SHA-256 of a secret (client secret, service-account token).
    pub(crate) fn secret_digest(&mut self, secret: &str) -> &mut Self {
        let digest = Sha256::digest(secret.as_bytes());
        self.0.update(32u64.to_be_bytes());
        self.0.update(digest);
        self
    }

    /// Finishes the key.
    pub(crate) fn finish(self) -> CacheKey {
        CacheKey(self.0.finalize().into())
    }
}

/// True while `token` may still be served at `now`: more than
/// min(5 min, 10% of its lifetime) left, and never once expired.
pub(crate) fn is_fresh(token: &AccessToken, now: SystemTime) -> bool {
    let Ok(remaining) = token.expires_on.duration_since(now) else {
        return false;
    };
    let lifetime = token
        .expires_on
        .duration_since(token.obtained_at)
        .unwrap_or(Duration::ZERO);
    let margin = MAX_REFRESH_MARGIN.min(lifetime / 10);
    !remaining.is_zero() && remaining > margin
}

type Shared = Option<Result<AccessToken, AuthError>>;

enum Action {
    Hit(AccessToken),
    Wait(watch::Receiver<Shared>),
    Lead(watch::Sender<Shared>),
}

enum Slot {
    Ready { token: AccessToken, last_used: u64 },
    Pending(watch::Receiver<Shared>),
}

/// Counters for one mode. Plain atomics; the metrics module reads them later.
#[derive(Default)]
struct ModeCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
    requests_ok: AtomicU64,
    requests_err: AtomicU64,
}

/// A snapshot of the cache counters for one identity mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModeStats {
    /// Served from the cache.
    pub hits: u64,
    /// Not in the cache (or stale): this caller fetched.
    pub misses: u64,
    /// Waited for another caller's in-flight fetch of the same key.
    pub coalesced: u64,
    /// Token requests that produced a token.
    pub requests_ok: u64,
    /// Token requests that failed (after retries).
    pub requests_err: u64,
}

/// The cache with its single-flight table.
pub(crate) struct TokenCache {
    inner: Mutex<Inner>,
    max_entries: usize,
    counters: [ModeCounters; ModeLabel::COUNT],
    evictions: AtomicU64,
}

struct Inner {
    slots: HashMap<CacheKey, Slot>,
    tick: u64,
}

impl TokenCache {
    pub(crate) fn new(max_entries: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                slots: HashMap::new(),
                tick: 0,
            }),
            max_entries: max_entries.max(1),
            counters: Default::default(),
            evictions: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map inconsistent (single
        // inserts/removes), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn stats(&self, mode: ModeLabel) -> ModeStats {
        let c = &self.counters[mode as usize];
        ModeStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            coalesced: c.coalesced.load(Ordering::Relaxed),
            requests_ok: c.requests_ok.load(Ordering::Relaxed),
            requests_err: c.requests_err.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().slots.len()
    }

    /// Returns a fresh cached token, joins an in-flight fetch for the same key, or runs
    /// `fetch` as the single leader. Errors are shared with current waiters but not cached.
    pub(crate) async fn get_or_fetch<F, Fut>(
        &self,
        key: CacheKey,
        mode: ModeLabel,
        now: impl Fn() -> SystemTime,
        fetch: F,
    ) -> Result<AccessToken, AuthError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, AuthError>>,
    {
        let counters = &self.counters[mode as usize];
        let mut fetch = Some(fetch);
        loop {
            let action = {
                let mut inner = self.lock();
                inner.tick += 1;
                let tick = inner.tick;
                match inner.slots.get_mut(&key) {
                    Some(Slot::Ready { token, last_used }) if is_fresh(token, now()) => {
                        *last_used = tick;
                        Action::Hit(token.clone())
                    }
                    Some(Slot::Pending(rx)) => Action::Wait(rx.clone()),
                    _ => {
                        let (tx, rx) = watch::channel(None);
                        if !inner.slots.contains_key(&key) {
                            self.make_room(&mut inner, now());
                        }
                        inner.slots.insert(key, Slot::Pending(rx));
                        Action::Lead(tx)
                    }
                }
            };
            let tx = match action {
                Action::Hit(token) => {
                    counters.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(token);
                }
                Action::Wait(rx) => {
                    counters.coalesced.fetch_add(1, Ordering::Relaxed);
                    match wait_shared(rx).await {
                        Some(result) => return result,
                        // The leader was cancelled before finishing: compete again.
                        None => continue,
                    }
                }
                Action::Lead(tx) => tx,
            };
            counters.misses.fetch_add(1, Ordering::Relaxed);
            let guard = PendingGuard {
                cache: self,
                key,
                done: false,
            };
            let Some(fetch) = fetch.take() else {
                // Only reachable if a leader loop iterated twice, which `return` below prevents.
                return Err(AuthError::Internal {
                    message: "token cache single flight entered twice".into(),
                });
            };
            let result = fetch().await;
            match &result {
                Ok(_) => counters.requests_ok.fetch_add(1, Ordering::Relaxed),
                Err(_) => counters.requests_err.fetch_add(1, Ordering::Relaxed),
            };
            guard.complete(&result, now());
            // Waiters hold receivers; a send error only means nobody is waiting.
            let _ = tx.send(Some(result.clone()));
            return result;
        }
    }

    /// Evicts expired entries, then the least recently used ones, until one slot is free.
    fn make_room(&self, inner: &mut Inner, now: SystemTime) {
        if inner.slots.len() < self.max_entries {
            return;
        }
        let before = inner.slots.len();
        inner.slots.retain(|_, slot| match slot {
            Slot::Ready { token, .. } => is_fresh(token, now),
            Slot::Pending(_) => true,
        });
        while inner.slots.len() >= self.max_entries {
            let oldest = inner
                .slots
                .iter()
                .filter_map(|(k, s)| match s {
                    Slot::Ready { last_used, .. } => Some((*last_used, *k)),
                    Slot::Pending(_) => None,
                })
                .min_by_key(|(t, _)| *t)
                .map(|(_, k)| k);
            match oldest {
                Some(k) => {
                    inner.slots.remove(&k);
                }
                // Everything is in flight: allow a temporary overshoot rather than block.
                None => break,
            }
        }
        let evicted = before.saturating_sub(inner.slots.len());
        self.evictions.fetch_add(evicted as u64, Ordering::Relaxed);
    }
}

async fn wait_shared(mut rx: watch::Receiver<Shared>) -> Option<Result<AccessToken, AuthError>> {
    match rx.wait_for(Option::is_some).await {
        Ok(v) => v.clone(),
        Err(_) => None,
    }
}

/// Removes the pending slot if the leader is dropped mid-fetch (e.g. the Mount was
/// cancelled), so the next caller becomes leader instead of waiting forever.
struct PendingGuard<'a> {
    cache: &'a TokenCache,
    key: CacheKey,
    done: bool,
}

impl PendingGuard<'_> {
    fn complete(mut self, result: &Result<AccessToken, AuthError>, now: SystemTime) {
        let mut inner = self.cache.lock();
        inner.tick += 1;
        let tick = inner.tick;
        match result {
            Ok(token) if is_fresh(token, now) => {
                inner.slots.insert(
                    self.key,
                    Slot::Ready {
                        token: token.clone(),
                        last_used: tick,
                    },
                );
            }
            _ => {
                inner.slots.remove(&self.key);
            }
        }
        self.done = true;
    }
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut inner = self.cache.lock();
            if matches!(inner.slots.get(&self.key), Some(Slot::Pending(_))) {
                inner.slots.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretString;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    fn token(obtained: SystemTime, lifetime: Duration) -> AccessToken {
        AccessToken {
            token: SecretString::from("tok"),
            expires_on: obtained + lifetime,
            obtained_at: obtained,
        }
    }

    fn key(s: &str) -> CacheKey {
        let mut b = KeyBuilder::new("test");
        b.field(s);
        b.finish()
    }

    #[test]
    fn key_fields_are_length_prefixed() {
        let mut a = KeyBuilder::new("m");
        a.field("ab").field("c");
        let mut b = KeyBuilder::new("m");
        b.field("a").field("bc");
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn key_debug_is_short() {
        let d = format!("{:?}", key("x"));
        assert!(
            d.starts_with("CacheKey(") && d.len() == "CacheKey()".len() + 12,
            "{d}"
        );
    }

    #[test]
    fn freshness_margin_is_min_of_five_minutes_and_ten_percent() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        // 1 h token: margin 5 min.
        let t = token(t0, Duration::from_secs(3600));
        assert!(is_fresh(&t, t0 + Duration::from_secs(3600 - 301)));
        assert!(!is_fresh(&t, t0 + Duration::from_secs(3600 - 300)));
        // 10 min token: margin 1 min.
        let t = token(t0, Duration::from_secs(600));
        assert!(is_fresh(&t, t0 + Duration::from_secs(539)));
        assert!(!is_fresh(&t, t0 + Duration::from_secs(540)));
        // Never serve expired, even with a zero lifetime.
        let t = token(t0, Duration::ZERO);
        assert!(!is_fresh(&t, t0));
        let t = token(t0, Duration::from_secs(5));
        assert!(!is_fresh(&t, t0 + Duration::from_secs(6)));
    }

    #[tokio::test]
    async fn hit_after_miss_and_refresh_when_stale() {
        let cache = TokenCache::new(10);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let now = Arc::new(Mutex::new(t0));
        let clock = {
            let now = now.clone();
            move || *now.lock().unwrap()
        };
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            Ok(token(*now.lock().unwrap(), Duration::from_secs(600)))
        };
        cache
            .get_or_fetch(key("a"), ModeLabel::ServicePrincipal, &clock, fetch)
            .await
            .unwrap();
        cache
            .get_or_fetch(key("a"), ModeLabel::ServicePrincipal, &clock, fetch)
            .await
            .unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        *now.lock().unwrap() = t0 + Duration::from_secs(545);
        cache
            .get_or_fetch(key("a"), ModeLabel::ServicePrincipal, &clock, fetch)
            .await
            .unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        let s = cache.stats(ModeLabel::ServicePrincipal);
        assert_eq!((s.hits, s.misses, s.requests_ok), (1, 2, 2));
    }

    #[tokio::test]
    async fn single_flight_coalesces_concurrent_requests() {
        let cache = Arc::new(TokenCache::new(10));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (release_tx, release_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let cache = cache.clone();
            let fetches = fetches.clone();
            let mut release_rx = release_rx.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_fetch(
                        key("k"),
                        ModeLabel::WorkloadIdentity,
                        SystemTime::now,
                        || async move {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            let _ = release_rx.wait_for(|v| *v).await;
                            Ok(token(SystemTime::now(), Duration::from_secs(3600)))
                        },
                    )
                    .await
            }));
        }
        // Let every task reach the cache before the leader finishes.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        release_tx.send(true).unwrap();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().token.expose(), "tok");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        let s = cache.stats(ModeLabel::WorkloadIdentity);
        assert_eq!(s.misses, 1);
        assert_eq!(s.coalesced + s.hits, 19);
    }

    #[tokio::test]
    async fn errors_are_shared_but_not_cached() {
        let cache = Arc::new(TokenCache::new(10));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (release_tx, release_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let cache = cache.clone();
            let fetches = fetches.clone();
            let mut release_rx = release_rx.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_fetch(key("e"), ModeLabel::Imds, SystemTime::now, || async move {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        let _ = release_rx.wait_for(|v| *v).await;
                        Err(AuthError::Internal {
                            message: "boom".into(),
                        })
                    })
                    .await
            }));
        }
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        release_tx.send(true).unwrap();
        for t in tasks {
            assert!(t.await.unwrap().is_err());
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert_eq!(cache.len(), 0);
        let r = cache
            .get_or_fetch(key("e"), ModeLabel::Imds, SystemTime::now, || async {
                Ok(token(SystemTime::now(), Duration::from_secs(3600)))
            })
            .await;
        assert!(r.is_ok());
        assert_eq!(cache.stats(ModeLabel::Imds).requests_err, 1);
    }

    #[tokio::test]
    async fn cancelled_leader_lets_the_next_caller_fetch() {
        let cache = Arc::new(TokenCache::new(10));
        let c2 = cache.clone();
        let leader = tokio::spawn(async move {
            c2.get_or_fetch(
                key("c"),
                ModeLabel::PodIdentity,
                SystemTime::now,
                || async {
                    std::future::pending::<()>().await;
                    Err(AuthError::Internal {
                        message: "unreachable".into(),
                    })
                },
            )
            .await
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        leader.abort();
        let _ = leader.await;
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            cache.get_or_fetch(
                key("c"),
                ModeLabel::PodIdentity,
                SystemTime::now,
                || async { Ok(token(SystemTime::now(), Duration::from_secs(3600))) },
            ),
        )
        .await
        .unwrap();
        assert!(r.is_ok());
    }

    #[tokio::test]
    async fn bounded_with_lru_eviction() {
        let cache = TokenCache::new(3);
        for name in ["a", "b", "c"] {
            cache
                .get_or_fetch(
                    key(name),
                    ModeLabel::ServicePrincipal,
                    SystemTime::now,
                    || async { Ok(token(SystemTime::now(), Duration::from_secs(3600))) },
                )
                .await
                .unwrap();
        }
        // Touch "a" so "b" is the least recently used.
        cache
            .get_or_fetch(
                key("a"),
                ModeLabel::ServicePrincipal,
                SystemTime::now,
                || async {
                    Err(AuthError::Internal {
                        message: "should hit".into(),
                    })
                },
            )
            .await
            .unwrap();
        cache
            .get_or_fetch(
                key("d"),
                ModeLabel::ServicePrincipal,
                SystemTime::now,
                || async { Ok(token(SystemTime::now(), Duration::from_secs(3600))) },
            )
            .await
            .unwrap();
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.evictions(), 1);
        let refetched = AtomicUsize::new(0);
        cache
            .get_or_fetch(
                key("b"),
                ModeLabel::ServicePrincipal,
                SystemTime::now,
                || async {
                    refetched.fetch_add(1, Ordering::SeqCst);
                    Ok(token(SystemTime::now(), Duration::from_secs(3600)))
                },
            )
            .await
            .unwrap();
        assert_eq!(refetched.load(Ordering::SeqCst), 1);
    }
}
