//! [`Session`]: the caches of everything read from immutable table files (Parquet footers,
//! deletion bitmaps, decoded vectors, index segments, full-text corpora, filter results), with
//! their memory budgets, owned by whoever opens tables and shared by the tables opened with it.
//!
//! A DataFusion session, a Python process, a DuckDB database or a Spark executor each make one
//! and pass it in ([`crate::TableBuilder::session`]); two sessions never share an entry. The
//! library itself keeps no process-wide cache and reads no environment variables.
//!
//! Every cache is keyed by table URI and the names of files that never change once written (or
//! by a version and its commit id), so an entry is valid for as long as its files exist; entries
//! are evicted least recently used first once a cache is over its budget.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// The memory budgets of a [`Session`]'s caches. A budget of 0 turns its caches off.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SessionOptions {
    /// Bytes of decoded vectors (the exact-search and index-build input), 2 GiB by default.
    pub vector_cache_bytes: usize,
    /// Bytes of parsed Parquet footers and deletion bitmaps, 256 MiB by default.
    pub metadata_cache_bytes: usize,
    /// Index segments and full-text corpora held, 256 by default (each is as large as its
    /// index; counted, not weighed).
    pub index_cache_entries: usize,
    /// Row-id sets of recent search filters, 32 by default.
    pub filter_cache_entries: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            vector_cache_bytes: 2 << 30,
            metadata_cache_bytes: 256 << 20,
            index_cache_entries: 256,
            filter_cache_entries: 32,
        }
    }
}

impl SessionOptions {
    /// These options with a vector cache of `bytes`.
    pub fn with_vector_cache_bytes(mut self, bytes: usize) -> Self {
        self.vector_cache_bytes = bytes;
        self
    }

    /// These options with a footer and bitmap cache of `bytes`.
    pub fn with_metadata_cache_bytes(mut self, bytes: usize) -> Self {
        self.metadata_cache_bytes = bytes;
        self
    }

    /// These options holding at most `entries` index segments and corpora.
    pub fn with_index_cache_entries(mut self, entries: usize) -> Self {
        self.index_cache_entries = entries;
        self
    }

    /// These options holding at most `entries` filter results.
    pub fn with_filter_cache_entries(mut self, entries: usize) -> Self {
        self.filter_cache_entries = entries;
        self
    }
}

/// What one cache of a session holds now and how it has served.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Entries held.
    pub entries: usize,
    /// Their weight: bytes, or entries for a cache budgeted in entries.
    pub weight: usize,
    /// The budget, in the same unit.
    pub capacity: usize,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that had to read.
    pub misses: u64,
}

/// The caches of a session. Cheap to clone: clones share the caches. `Session::default()` is a
/// new session with the default budgets.
#[derive(Clone, Default)]
pub struct Session {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    options: SessionOptions,
    caches: Mutex<HashMap<TypeId, Arc<dyn AnyCache>>>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A new session with these budgets.
    pub fn new(options: SessionOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                options,
                caches: Mutex::default(),
            }),
        }
    }

    /// Its budgets.
    pub fn options(&self) -> &SessionOptions {
        &self.inner.options
    }

    /// The state of each cache used so far, by name.
    pub fn stats(&self) -> BTreeMap<&'static str, CacheStats> {
        self.caches().values().map(|c| (c.name(), c.stats())).collect()
    }

    /// Empties every cache (the hit and miss counts stay).
    pub fn clear(&self) {
        for cache in self.caches().values() {
            cache.clear();
        }
    }

    /// Whether `self` and `other` are the same session.
    pub fn same_as(&self, other: &Session) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The cache of kind `C`, made on first use.
    pub(crate) fn cache<C: CacheKind>(&self) -> Arc<Lru<C>> {
        let mut caches = self.caches();
        let cache = caches
            .entry(TypeId::of::<C>())
            .or_insert_with(|| Arc::new(Lru::<C>::new(C::capacity(&self.inner.options))))
            .clone();
        drop(caches);
        // The map holds an `Lru<C>` under `C`'s type id, and nothing else.
        match cache.into_any().downcast::<Lru<C>>() {
            Ok(cache) => cache,
            Err(_) => unreachable!("the cache of {} has another type", C::NAME),
        }
    }

    fn caches(&self) -> std::sync::MutexGuard<'_, HashMap<TypeId, Arc<dyn AnyCache>>> {
        self.inner.caches.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A kind of cached value: its key, value, name and budget.
pub(crate) trait CacheKind: 'static {
    /// What an entry is looked up by.
    type Key: Eq + Hash + Clone + Send + Sync + 'static;
    /// What it holds (cheap to clone: an `Arc` or a handle).
    type Value: Clone + Send + Sync + 'static;
    /// The name in [`Session::stats`].
    const NAME: &'static str;
    /// The budget this kind gets from `options`.
    fn capacity(options: &SessionOptions) -> usize;
    /// The weight of `value` against the budget (1: budgets in entries).
    fn weigh(_value: &Self::Value) -> usize {
        1
    }
}

/// A cache of one kind, least recently used entries evicted first.
pub(crate) struct Lru<C: CacheKind> {
    state: Mutex<LruState<C>>,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

struct LruState<C: CacheKind> {
    /// Value, weight and last use of each entry.
    entries: HashMap<C::Key, (C::Value, usize, u64)>,
    /// Entries by last use.
    by_use: BTreeMap<u64, C::Key>,
    weight: usize,
    clock: u64,
}

impl<C: CacheKind> Lru<C> {
    fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(LruState {
                entries: HashMap::new(),
                by_use: BTreeMap::new(),
                weight: 0,
                clock: 0,
            }),
            capacity,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruState<C>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry of `key`, marked used.
    pub fn get(&self, key: &C::Key) -> Option<C::Value> {
        let mut state = self.lock();
        state.clock += 1;
        let now = state.clock;
        let found = state.entries.get_mut(key).map(|(value, _, used)| {
            let before = std::mem::replace(used, now);
            (value.clone(), before)
        });
        let Some((value, before)) = found else {
            drop(state);
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        state.by_use.remove(&before);
        state.by_use.insert(now, key.clone());
        drop(state);
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(value)
    }

    /// Holds `value` under `key`, evicting the least recently used entries to stay within the
    /// budget; a value heavier than the whole budget is not held.
    pub fn insert(&self, key: C::Key, value: C::Value) {
        let weight = C::weigh(&value);
        if weight > self.capacity {
            return;
        }
        let mut state = self.lock();
        state.clock += 1;
        let now = state.clock;
        if let Some((_, old_weight, used)) = state.entries.insert(key.clone(), (value, weight, now)) {
            state.weight -= old_weight;
            state.by_use.remove(&used);
        }
        state.by_use.insert(now, key);
        state.weight += weight;
        while state.weight > self.capacity {
            let Some((_, oldest)) = state.by_use.pop_first() else {
                break;
            };
            if let Some((_, w, _)) = state.entries.remove(&oldest) {
                state.weight -= w;
            }
        }
    }

    /// The entry of `key`, or the value `load` makes (then held).
    pub async fn get_or_load<F, E>(&self, key: C::Key, load: F) -> Result<C::Value, E>
    where
        F: std::future::Future<Output = Result<C::Value, E>>,
    {
        if let Some(hit) = self.get(&key) {
            return Ok(hit);
        }
        let value = load.await?;
        self.insert(key, value.clone());
        Ok(value)
    }
}

/// A cache of any kind, as the session's map holds it.
trait AnyCache: Send + Sync {
    fn name(&self) -> &'static str;
    fn stats(&self) -> CacheStats;
    fn clear(&self);
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<C: CacheKind> AnyCache for Lru<C> {
    fn name(&self) -> &'static str {
        C::NAME
    }

    fn stats(&self) -> CacheStats {
        let state = self.lock();
        CacheStats {
            entries: state.entries.len(),
            weight: state.weight,
            capacity: self.capacity,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    fn clear(&self) {
        let mut state = self.lock();
        state.entries.clear();
        state.by_use.clear();
        state.weight = 0;
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Bytes;
    impl CacheKind for Bytes {
        type Key = u32;
        type Value = Arc<Vec<u8>>;
        const NAME: &'static str = "bytes";
        fn capacity(options: &SessionOptions) -> usize {
            options.vector_cache_bytes
        }
        fn weigh(value: &Self::Value) -> usize {
            value.len()
        }
    }

    #[test]
    fn least_recently_used_entries_go_first_and_budgets_hold() {
        let session = Session::new(SessionOptions::default().with_vector_cache_bytes(10));
        let cache = session.cache::<Bytes>();
        cache.insert(1, Arc::new(vec![0; 4]));
        cache.insert(2, Arc::new(vec![0; 4]));
        assert!(cache.get(&1).is_some(), "1 is now the most recently used");
        cache.insert(3, Arc::new(vec![0; 4]));
        assert!(cache.get(&2).is_none(), "2 was the least recently used");
        assert!(cache.get(&1).is_some() && cache.get(&3).is_some());
        cache.insert(4, Arc::new(vec![0; 11]));
        assert!(cache.get(&4).is_none(), "heavier than the budget");
        let stats = &session.stats()["bytes"];
        assert_eq!((stats.entries, stats.weight, stats.capacity), (2, 8, 10));
        assert_eq!((stats.hits, stats.misses), (3, 2));
        // The same cache again, not a new one.
        assert!(session.cache::<Bytes>().get(&1).is_some());
        session.clear();
        assert_eq!(session.stats()["bytes"].entries, 0);
        assert!(session.clone().same_as(&session) && !session.same_as(&Session::default()));
    }
}
