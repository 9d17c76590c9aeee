//! What the command service needs of an event store: load a stream, append a commit and
//! learn where it landed, a stream's history with the store's own columns, and aggregate
//! snapshots. One implementation per backend.
//!
//! The append is ours rather than cqrs-es's `PersistedEventRepository::persist`: that
//! returns nothing, so the service had to ask afterwards where the commit landed (for
//! read-your-writes), and postgres-es spends a round trip per event plus `BEGIN` and
//! `COMMIT`. Here a commit is one statement that returns its position (ADR 0004); on
//! PostgreSQL, concurrent commits to different streams share that statement (ADR 0009).

use async_trait::async_trait;

use crate::history::{HistoryEvent, StorePosition};

/// An aggregate's state at `sequence`, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub sequence: i64,
    /// Which serialized shape `payload` has; see [`crate::snapshot::SCHEMA`].
    pub schema: String,
    /// The state as JSON text.
    pub payload: String,
}

/// An event to append, its payload and metadata already JSON text: serialized once, from
/// the domain event (cqrs-es's `SerializedEvent` holds a `serde_json::Value`, which for an
/// editor document meant decoding its text into a tree only to write it out again).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: usize,
    pub event_type: String,
    pub event_version: String,
    pub payload: String,
    pub metadata: String,
}

/// A snapshot as a stream load reads it: its JSON left as text, decoded once, straight
/// into the aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSnapshot {
    pub sequence: i64,
    pub payload: String,
}

/// An event as a stream load reads it: its payload left as JSON text, decoded once,
/// straight into the domain event (not first into a `serde_json::Value` tree, which
/// decoding the event then copies: for an editor save that was a third of a load's CPU).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEvent {
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: String,
}

/// Why an append wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another writer appended to the stream first (a sequence is taken), or the stream
    /// does not reach the commit's first sequence: nothing of this commit was written.
    #[error("another writer appended to the stream first")]
    Conflict,
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

impl AppendError {
    /// A unique violation is the stream's `(aggregate_type, aggregate_id, sequence)` key:
    /// another writer's append.
    pub(crate) fn from_sqlx(error: sqlx::Error) -> Self {
        match error.as_database_error() {
            Some(db) if db.is_unique_violation() => Self::Conflict,
            _ => Self::Store(error),
        }
    }
}

#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends one commit (events of one stream, consecutive sequences) atomically and
    /// returns where its last event sits in the feed. A taken sequence is
    /// [`AppendError::Conflict`] and writes nothing; so is, on PostgreSQL, a first sequence
    /// that does not follow a stored event (the embedded file is one process's alone, so a
    /// state ahead of it cannot arise there).
    async fn append(&self, events: &[NewEvent]) -> Result<StorePosition, AppendError>;

    /// The events of one stream in sequence order, with positions and times.
    async fn history(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<HistoryEvent>, sqlx::Error>;

    /// One stream as the command service loads it, in one round trip: its snapshot of
    /// `schema` if one is stored, and the events after it (every event without one), in
    /// sequence order, without their metadata (the fold does not need it).
    async fn load_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        schema: &str,
    ) -> Result<(Option<StoredSnapshot>, Vec<StreamEvent>), sqlx::Error>;

    /// Stores a snapshot unless a newer one is already stored.
    async fn save_snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        snapshot: &Snapshot,
    ) -> Result<(), sqlx::Error>;
}

/// Splits load rows (`event_type` NULL on the snapshot row; payloads as JSON text) into
/// the snapshot and the events.
pub(crate) fn split_stream(
    rows: Vec<(Option<String>, Option<String>, i64, String)>,
) -> (Option<StoredSnapshot>, Vec<StreamEvent>) {
    let mut snapshot = None;
    let mut events = Vec::with_capacity(rows.len());
    for (event_type, event_version, sequence, payload) in rows {
        match (event_type, event_version) {
            (Some(event_type), Some(event_version)) => events.push(StreamEvent {
                sequence,
                event_type,
                event_version,
                payload,
            }),
            _ => snapshot = Some(StoredSnapshot { sequence, payload }),
        }
    }
    (snapshot, events)
}

/// The first event of `events` if they are a commit: one stream's consecutive events, at
/// least one; otherwise the error both backends answer with (nothing is written).
pub(crate) fn commit_head(events: &[NewEvent]) -> Result<&NewEvent, AppendError> {
    let one_stream = events.windows(2).all(|pair| {
        pair[0].aggregate_type == pair[1].aggregate_type
            && pair[0].aggregate_id == pair[1].aggregate_id
            && pair[0].sequence + 1 == pair[1].sequence
    });
    match events.first() {
        Some(first) if one_stream => Ok(first),
        _ => Err(AppendError::Store(sqlx::Error::Protocol(
            "an append is a non-empty commit to one stream".into(),
        ))),
    }
}
