//! The state of recently written models, kept after each successful append so that the
//! next command on the same model skips the load: one database round trip, the events'
//! decoding and the fold (docs/performance.md, "State cache").
//!
//! The event store stays the judge. A cached state is only ever used to *try* an append:
//! the append names the next sequence, so if another writer (another replica) got there
//! first it conflicts and writes nothing, and the store refuses a sequence that does not
//! follow one it holds. Whatever else a cached state leads to (a refusal, a command that
//! changes nothing) is decided again on a fresh load, because a stale state could decide
//! it wrongly (an `If-Match` of the newer revision, say).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use domain::ProcessModel;
use hashlink::LruCache;

/// How the commands of one server started, for its metrics: cheap to clone, read at any
/// time.
#[derive(Debug, Clone, Default)]
pub struct StateCacheCounts(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
}

impl StateCacheCounts {
    /// Commands decided and appended without loading the model: on a kept state, or (a
    /// create) on a stream assumed new.
    pub fn hits(&self) -> u64 {
        self.0.hits.load(Ordering::Relaxed)
    }

    /// Commands that found no cached state and loaded the model.
    pub fn misses(&self) -> u64 {
        self.0.misses.load(Ordering::Relaxed)
    }

    /// Commands whose kept or assumed state was not the store's (or led to a refusal or to
    /// no change) and were decided again on a fresh load.
    pub fn stale(&self) -> u64 {
        self.0.stale.load(Ordering::Relaxed)
    }

    pub(crate) fn hit(&self) {
        self.0.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn miss(&self) {
        self.0.misses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stale_state(&self) {
        self.0.stale.fetch_add(1, Ordering::Relaxed);
    }
}

/// A model as of its last append here.
#[derive(Debug, Clone)]
pub(crate) struct CachedModel {
    pub(crate) model: Arc<ProcessModel>,
    /// The stream's last sequence (the model's revision).
    pub(crate) sequence: usize,
    /// The sequence of the stream's newest stored snapshot (0 without one).
    pub(crate) snapshot_sequence: usize,
}

impl CachedModel {
    /// The state of a stream with no events (what a create is decided on).
    pub(crate) fn new_stream() -> Self {
        Self {
            model: Arc::new(ProcessModel::default()),
            sequence: 0,
            snapshot_sequence: 0,
        }
    }
}

/// Least recently used models first out, bounded by their estimated memory.
#[derive(Debug)]
pub(crate) struct StateCache {
    budget_bytes: usize,
    inner: Mutex<Entries>,
}

#[derive(Debug)]
struct Entries {
    models: LruCache<String, (CachedModel, usize)>,
    bytes: usize,
}

impl StateCache {
    /// A cache holding models up to `budget_bytes` of their estimated memory in all; 0 keeps
    /// none.
    pub(crate) fn new(budget_bytes: usize) -> Self {
        Self {
            budget_bytes,
            inner: Mutex::new(Entries {
                models: LruCache::new_unbounded(),
                bytes: 0,
            }),
        }
    }

    /// Whether it keeps anything (a budget above 0).
    pub(crate) fn enabled(&self) -> bool {
        self.budget_bytes > 0
    }

    pub(crate) fn get(&self, stream: &str) -> Option<CachedModel> {
        if !self.enabled() {
            return None;
        }
        self.lock()
            .models
            .get(stream)
            .map(|(cached, _)| cached.clone())
    }

    /// Keeps `cached` as the state of `stream`, unless it alone exceeds the budget.
    pub(crate) fn put(&self, stream: &str, cached: CachedModel) {
        if !self.enabled() {
            return;
        }
        let size = weight(&cached.model) + stream.len();
        let mut entries = self.lock();
        if let Some((_, old)) = entries.models.remove(stream) {
            entries.bytes -= old;
        }
        if size > self.budget_bytes {
            return;
        }
        while entries.bytes + size > self.budget_bytes {
            match entries.models.remove_lru() {
                Some((_, (_, evicted))) => entries.bytes -= evicted,
                None => break,
            }
        }
        entries.models.insert(stream.to_owned(), (cached, size));
        entries.bytes += size;
    }

    /// Drops what is kept of `stream` (its state here may be stale).
    pub(crate) fn forget(&self, stream: &str) {
        let mut entries = self.lock();
        if let Some((_, size)) = entries.models.remove(stream) {
            entries.bytes -= size;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // The entries stay consistent whatever panicked while holding the lock: every
        // change to `models` and `bytes` is made without a call that could panic between.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

/// What a kept model costs in memory for every byte of its JSON: `serde_json::Value` trees,
/// map nodes and allocator size classes. Measured with the load benchmark: a budget of
/// 8 MiB at 5 per byte grew the server's resident memory by ≈ 11.5 MiB.
const MEMORY_PER_JSON_BYTE: usize = 7;

/// The estimated memory a kept model takes, the measure of the budget.
fn weight(model: &ProcessModel) -> usize {
    domain::values::json_size(model) * MEMORY_PER_JSON_BYTE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(sequence: usize) -> CachedModel {
        CachedModel {
            model: Arc::new(ProcessModel::default()),
            sequence,
            snapshot_sequence: 0,
        }
    }

    #[test]
    fn the_least_recently_used_models_leave_first_when_the_budget_is_spent() {
        let one = weight(&ProcessModel::default()) + "a".len();
        let cache = StateCache::new(2 * one);
        cache.put("a", cached(1));
        cache.put("b", cached(1));
        assert!(cache.get("a").is_some(), "a is now the most recently used");
        cache.put("c", cached(1));
        assert!(cache.get("b").is_none(), "b was the least recently used");
        assert_eq!(cache.get("a").map(|c| c.sequence), Some(1));
        assert!(cache.get("c").is_some());
        assert_eq!(cache.bytes(), 2 * one);
    }

    #[test]
    fn a_put_replaces_and_forget_drops_with_their_sizes() {
        let cache = StateCache::new(1 << 20);
        cache.put("a", cached(1));
        let one = cache.bytes();
        cache.put("a", cached(2));
        assert_eq!(cache.bytes(), one);
        assert_eq!(cache.get("a").map(|c| c.sequence), Some(2));
        cache.forget("a");
        assert!(cache.get("a").is_none());
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn a_zero_budget_keeps_nothing_and_an_oversized_model_is_not_kept() {
        let off = StateCache::new(0);
        off.put("a", cached(1));
        assert!(off.get("a").is_none());
        let tiny = StateCache::new(3);
        tiny.put("a", cached(1));
        assert!(tiny.get("a").is_none());
        assert_eq!(tiny.bytes(), 0);
    }
}
