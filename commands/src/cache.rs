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

/// Where a model's stream stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StreamAt {
    /// The stream's last sequence (the model's revision).
    pub(crate) sequence: usize,
    /// The sequence of the stream's newest stored snapshot (0 without one).
    pub(crate) snapshot_sequence: usize,
    /// The JSON bytes of the events after that snapshot.
    pub(crate) bytes_since_snapshot: usize,
}

/// A model as of its last append here, to decide the next command on.
#[derive(Debug, Clone)]
pub(crate) struct CachedModel {
    pub(crate) model: ProcessModel,
    pub(crate) at: StreamAt,
}

impl CachedModel {
    /// The state of a stream with no events (what a create is decided on).
    pub(crate) fn new_stream() -> Self {
        Self {
            model: ProcessModel::default(),
            at: StreamAt::default(),
        }
    }
}

/// What the cache holds of a model: its state serialized as JSON (the snapshot format),
/// decoded again on a hit, so the budget counts real bytes rather than an estimate. This
/// was chosen when a decoded model took ≈ 7 times its JSON (`serde_json::Value` trees of the
/// editor JSON); since the editor JSON is kept as text (`domain::EditorJson`) a decoded
/// model is about its JSON's size, and serializing and decoding it copy that text.
#[derive(Debug, Clone)]
struct Kept {
    json: Arc<[u8]>,
    at: StreamAt,
}

/// What an entry costs beyond its JSON and its key: the list node, the key's and the
/// JSON's headers.
const ENTRY_OVERHEAD: usize = 96;

/// Least recently used models first out, bounded by their memory.
#[derive(Debug)]
pub(crate) struct StateCache {
    budget_bytes: usize,
    inner: Mutex<Entries>,
}

#[derive(Debug)]
struct Entries {
    models: LruCache<String, (Kept, usize)>,
    bytes: usize,
}

impl StateCache {
    /// A cache holding models up to `budget_bytes` in all; 0 keeps none.
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
        let kept = self
            .lock()
            .models
            .get(stream)
            .map(|(kept, _)| kept.clone())?;
        // Decoded outside the lock.
        match serde_json::from_slice(&kept.json) {
            Ok(model) => Some(CachedModel { model, at: kept.at }),
            Err(error) => {
                // Cannot happen for what `put` wrote; if it does, the model is loaded.
                tracing::warn!(stream, %error, "a cached model does not decode; loading it");
                self.forget(stream);
                None
            }
        }
    }

    /// Keeps `model` as the state of `stream` at `at`, unless it alone exceeds the budget.
    pub(crate) fn put(&self, stream: &str, model: &ProcessModel, at: StreamAt) {
        if !self.enabled() {
            return;
        }
        let json = match serde_json::to_vec(model) {
            Ok(json) => Arc::<[u8]>::from(json),
            Err(error) => {
                tracing::warn!(stream, %error, "a model does not serialize; not caching it");
                self.forget(stream);
                return;
            }
        };
        let size = json.len() + stream.len() + ENTRY_OVERHEAD;
        let kept = Kept { json, at };
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
        entries.models.insert(stream.to_owned(), (kept, size));
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

#[cfg(test)]
mod tests {
    use cqrs_es::Aggregate;
    use domain::values::{EditorJson, ModelKey, ModelName, TenantId};
    use domain::ProcessModelEvent;

    use super::*;

    /// A created model whose editor JSON holds `shapes` shapes.
    fn model(shapes: usize) -> ProcessModel {
        let key = ModelKey::parse("order").expect("key");
        let name = ModelName::parse("Order").expect("name");
        let mut json = EditorJson::empty_canvas(&key, &name).to_value();
        json["childShapes"] = (0..shapes)
            .map(|n| serde_json::json!({"resourceId": format!("task{n}"), "properties": {}}))
            .collect();
        let mut model = ProcessModel::default();
        model.apply(ProcessModelEvent::ModelCreated(
            domain::process_model::ModelCreated {
                tenant_id: TenantId::new("acme"),
                key,
                name,
                category: None,
                description: None,
                model_json: EditorJson::parse(json).expect("editor JSON"),
                version: 1,
            },
        ));
        model
    }

    fn at(sequence: usize, snapshot_sequence: usize) -> StreamAt {
        StreamAt {
            sequence,
            snapshot_sequence,
            bytes_since_snapshot: 0,
        }
    }

    fn one_entry(model: &ProcessModel, stream: &str) -> usize {
        serde_json::to_vec(model).expect("json").len() + stream.len() + ENTRY_OVERHEAD
    }

    #[test]
    fn a_kept_model_comes_back_equal_with_its_sequences() {
        let cache = StateCache::new(1 << 20);
        let kept = model(50);
        cache.put("a", &kept, at(7, 5));
        let got = cache.get("a").expect("kept");
        assert_eq!(got.model, kept);
        assert_eq!(got.at, at(7, 5));
        assert_eq!(cache.bytes(), one_entry(&kept, "a"));
    }

    #[test]
    fn the_least_recently_used_models_leave_first_when_the_budget_is_spent() {
        let small = model(0);
        let cache = StateCache::new(2 * one_entry(&small, "a"));
        cache.put("a", &small, at(1, 0));
        cache.put("b", &small, at(1, 0));
        assert!(cache.get("a").is_some(), "a is now the most recently used");
        cache.put("c", &small, at(1, 0));
        assert!(cache.get("b").is_none(), "b was the least recently used");
        assert_eq!(cache.get("a").map(|c| c.at.sequence), Some(1));
        assert!(cache.get("c").is_some());
        assert_eq!(cache.bytes(), 2 * one_entry(&small, "a"));
        // A slightly bigger model needs both places.
        let big = model(1);
        cache.put("d", &big, at(1, 0));
        assert!(cache.get("d").is_some());
        assert!(cache.get("a").is_none() && cache.get("c").is_none());
    }

    #[test]
    fn a_put_replaces_and_forget_drops_with_their_sizes() {
        let cache = StateCache::new(1 << 20);
        cache.put("a", &model(1), at(1, 0));
        cache.put("a", &model(3), at(2, 0));
        assert_eq!(cache.bytes(), one_entry(&model(3), "a"));
        assert_eq!(cache.get("a").map(|c| c.at.sequence), Some(2));
        cache.forget("a");
        assert!(cache.get("a").is_none());
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn a_zero_budget_keeps_nothing_and_an_oversized_model_is_not_kept() {
        let off = StateCache::new(0);
        off.put("a", &model(0), at(1, 0));
        assert!(off.get("a").is_none());
        let tiny = StateCache::new(3);
        tiny.put("a", &model(0), at(1, 0));
        assert!(tiny.get("a").is_none());
        assert_eq!(tiny.bytes(), 0);
    }
}
