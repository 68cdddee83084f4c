//! Cache of raw Key Vault responses (`--object-cache-ttl`), partitioned by principal.
//!
//! An entry is the 2xx body of one GET (secret, key, certificate or one page of a version
//! listing), keyed by the caller's *scope* (the digest of the principal its own credential was
//! accepted for, see [`crate::auth::Principal`]) and the request URL (vault host, collection,
//! name, requested version or latest, API version). Nothing is ever shared across scopes, errors
//! are never stored (a 403, 404 or disabled version is asked again every time), entries live at
//! most the TTL after they were fetched, the total size is bounded with LRU eviction, and values
//! are [`SecretBytes`], wiped when evicted, expired or replaced.
//!
//! Staleness: a value changed in Key Vault, or access revoked from a principal, is observed at
//! most one TTL later (README, "Object cache").

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::secret::SecretBytes;

/// Default `--object-cache-max-bytes`: 110 pods × 10 objects of 16 KiB (large certificate
/// bundles) with room to spare.
pub const DEFAULT_MAX_BYTES: usize = 32 * 1024 * 1024;

/// Accounted per entry besides body and URL (map, LRU index, key digest).
const ENTRY_OVERHEAD: usize = 160;

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    scope: [u8; 32],
    url: String,
}

struct Entry {
    body: SecretBytes,
    fetched: Instant,
    tick: u64,
    size: usize,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Key, Entry>,
    /// tick -> key, oldest use first.
    lru: BTreeMap<u64, Key>,
    tick: u64,
    bytes: usize,
    last_sweep: Option<Instant>,
}

impl Inner {
    fn remove(&mut self, key: &Key) -> Option<Entry> {
        let entry = self.map.remove(key)?;
        self.lru.remove(&entry.tick);
        self.bytes = self.bytes.saturating_sub(entry.size);
        Some(entry)
    }
}

/// A snapshot of the cache counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ObjectCacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that went to Key Vault (absent or expired).
    pub misses: u64,
    /// Entries removed to stay within the byte bound.
    pub evictions: u64,
    /// Bytes currently accounted (bodies, URLs and per-entry overhead).
    pub bytes: u64,
    /// Entries currently held.
    pub entries: u64,
}

/// The object cache; one per process, shared by every Mount.
pub struct ObjectCache {
    ttl: Duration,
    max_bytes: usize,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
}

impl std::fmt::Debug for ObjectCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectCache")
            .field("ttl", &self.ttl)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl ObjectCache {
    /// A cache keeping entries for `ttl` within `max_bytes`; `None` when `ttl` is zero (off).
    pub fn new(ttl: Duration, max_bytes: usize) -> Option<Self> {
        (!ttl.is_zero()).then(|| Self {
            ttl,
            max_bytes,
            inner: Mutex::new(Inner::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        })
    }

    /// The configured TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation keeps map, index and byte count consistent before it can panic.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The body stored for `url` in `scope`, if fetched less than one TTL ago.
    pub fn get(&self, scope: &[u8; 32], url: &str) -> Option<SecretBytes> {
        let key = Key {
            scope: *scope,
            url: url.to_owned(),
        };
        let now = Instant::now();
        let mut inner = self.lock();
        let fresh = match inner.map.get(&key) {
            Some(e) => now.saturating_duration_since(e.fetched) < self.ttl,
            None => false,
        };
        if !fresh {
            // An expired entry goes now rather than at the next sweep: its value is wiped.
            inner.remove(&key);
            drop(inner);
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        inner.tick += 1;
        let tick = inner.tick;
        let Inner { map, lru, .. } = &mut *inner;
        let entry = map.get_mut(&key)?;
        lru.remove(&entry.tick);
        entry.tick = tick;
        lru.insert(tick, key);
        let body = entry.body.clone();
        drop(inner);
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(body)
    }

    /// Stores a successful response `body` for `url` in `scope` (replacing an older one).
    /// A body larger than the whole bound is not stored.
    pub fn insert(&self, scope: &[u8; 32], url: &str, body: &SecretBytes) {
        let size = body.len() + url.len() + ENTRY_OVERHEAD;
        if size > self.max_bytes {
            return;
        }
        let key = Key {
            scope: *scope,
            url: url.to_owned(),
        };
        let now = Instant::now();
        let mut inner = self.lock();
        inner.remove(&key);
        self.sweep(&mut inner, now);
        let mut evicted = 0u64;
        while inner.bytes + size > self.max_bytes {
            let Some((_, oldest)) = inner.lru.pop_first() else {
                break;
            };
            if let Some(e) = inner.map.remove(&oldest) {
                inner.bytes = inner.bytes.saturating_sub(e.size);
                evicted += 1;
            }
        }
        inner.tick += 1;
        let tick = inner.tick;
        inner.lru.insert(tick, key.clone());
        inner.map.insert(
            key,
            Entry {
                body: body.clone(),
                fetched: now,
                tick,
                size,
            },
        );
        inner.bytes += size;
        drop(inner);
        if evicted > 0 {
            self.evictions.fetch_add(evicted, Ordering::Relaxed);
        }
    }

    /// Drops expired entries at most once per TTL, so values do not outlive their TTL in
    /// memory by much even when nobody asks for them again.
    fn sweep(&self, inner: &mut Inner, now: Instant) {
        if inner
            .last_sweep
            .is_some_and(|t| now.saturating_duration_since(t) < self.ttl)
        {
            return;
        }
        inner.last_sweep = Some(now);
        let expired: Vec<Key> = inner
            .map
            .iter()
            .filter(|(_, e)| now.saturating_duration_since(e.fetched) >= self.ttl)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            inner.remove(k);
        }
    }

    /// Current counters.
    pub fn stats(&self) -> ObjectCacheStats {
        let (bytes, entries) = {
            let inner = self.lock();
            (inner.bytes, inner.map.len())
        };
        ObjectCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            bytes: bytes as u64,
            entries: entries as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 32] = [1; 32];
    const B: [u8; 32] = [2; 32];
    const URL: &str = "https://kv.vault.azure.net/secrets/s/?api-version=7.4";

    fn body(s: &str) -> SecretBytes {
        SecretBytes::new(s.as_bytes().to_vec())
    }

    #[test]
    fn zero_ttl_is_off() {
        assert!(ObjectCache::new(Duration::ZERO, 1 << 20).is_none());
    }

    #[test]
    fn entries_never_cross_scopes() {
        let c = ObjectCache::new(Duration::from_secs(60), 1 << 20).unwrap();
        c.insert(&A, URL, &body("for-a"));
        assert_eq!(c.get(&A, URL).unwrap().expose(), b"for-a");
        assert!(c.get(&B, URL).is_none());
        assert!(
            c.get(&A, "https://kv.vault.azure.net/secrets/t/?api-version=7.4")
                .is_none()
        );
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.entries), (1, 2, 1));
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let ttl = Duration::from_millis(200);
        let c = ObjectCache::new(ttl, 1 << 20).unwrap();
        c.insert(&A, URL, &body("v1"));
        assert!(c.get(&A, URL).is_some());
        std::thread::sleep(ttl);
        assert!(c.get(&A, URL).is_none());
        // The expired entry is gone, not just hidden.
        assert_eq!(c.stats().entries, 0);
        assert_eq!(c.stats().bytes, 0);
    }

    #[test]
    fn sweep_drops_expired_entries_of_others() {
        let ttl = Duration::from_millis(100);
        let c = ObjectCache::new(ttl, 1 << 20).unwrap();
        c.insert(&A, URL, &body("v1"));
        std::thread::sleep(ttl);
        c.insert(&B, URL, &body("v2"));
        assert_eq!(c.stats().entries, 1);
    }

    #[test]
    fn bounded_by_bytes_with_lru_eviction() {
        let one = 100 + URL.len() + ENTRY_OVERHEAD + 2;
        let c = ObjectCache::new(Duration::from_secs(60), one * 3).unwrap();
        let v = "x".repeat(100);
        for scope in [[1u8; 32], [2; 32], [3; 32]] {
            c.insert(&scope, URL, &body(&v));
        }
        assert_eq!(c.stats().entries, 3);
        // Touch the first so the second is the least recently used.
        assert!(c.get(&[1; 32], URL).is_some());
        c.insert(&[4; 32], URL, &body(&v));
        let s = c.stats();
        assert_eq!((s.entries, s.evictions), (3, 1));
        assert!(s.bytes as usize <= one * 3);
        assert!(c.get(&[2; 32], URL).is_none());
        assert!(c.get(&[1; 32], URL).is_some());
        // Larger than the whole bound: not stored, nothing evicted.
        c.insert(&[5; 32], URL, &body(&"y".repeat(one * 3)));
        assert_eq!(c.stats().entries, 3);
        assert_eq!(c.stats().evictions, 1);
    }

    #[test]
    fn replacing_keeps_the_byte_count_exact() {
        let c = ObjectCache::new(Duration::from_secs(60), 1 << 20).unwrap();
        c.insert(&A, URL, &body("short"));
        c.insert(&A, URL, &body("a-longer-value"));
        let s = c.stats();
        assert_eq!(s.entries, 1);
        assert_eq!(
            s.bytes as usize,
            "a-longer-value".len() + URL.len() + ENTRY_OVERHEAD
        );
        assert_eq!(c.get(&A, URL).unwrap().expose(), b"a-longer-value");
    }
}
