//! What the command service needs of an event store besides cqrs-es's repository: the
//! store's own columns, and aggregate snapshots. One implementation per backend.

use async_trait::async_trait;

use crate::history::{HistoryEvent, StorePosition};

/// An aggregate's state at `sequence`, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub sequence: i64,
    /// Which serialized shape `payload` has; see [`crate::snapshot::SCHEMA`].
    pub schema: String,
    pub payload: serde_json::Value,
}

#[async_trait]
pub trait StoreReads: Send + Sync + 'static {
    /// The events of one stream in sequence order, with positions and times.
    async fn history(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<HistoryEvent>, sqlx::Error>;

    /// Where one event of a stream sits in the feed (for read-your-writes).
    async fn position_of(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        sequence: i64,
    ) -> Result<Option<StorePosition>, sqlx::Error>;

    /// The stored snapshot of one aggregate, if any.
    async fn load_snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Option<Snapshot>, sqlx::Error>;

    /// Stores a snapshot unless a newer one is already stored.
    async fn save_snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        snapshot: &Snapshot,
    ) -> Result<(), sqlx::Error>;
}
