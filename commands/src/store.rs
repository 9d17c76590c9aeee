//! What the command service needs of an event store besides cqrs-es's repository: the
//! store's own columns, and aggregate snapshots. One implementation per backend.

use async_trait::async_trait;
use cqrs_es::persist::SerializedEvent;

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

    /// One stream as the command service loads it, in one round trip: its snapshot of
    /// `schema` if one is stored, and the events after it (every event without one), in
    /// sequence order, without their metadata (the fold does not need it).
    async fn load_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        schema: &str,
    ) -> Result<(Option<Snapshot>, Vec<SerializedEvent>), sqlx::Error>;

    /// Stores a snapshot unless a newer one is already stored.
    async fn save_snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        snapshot: &Snapshot,
    ) -> Result<(), sqlx::Error>;
}

/// Splits [`LOAD_STREAM`]-shaped rows (`event_type` NULL on the snapshot row) into the
/// snapshot and the events.
pub(crate) fn split_stream(
    aggregate_type: &str,
    aggregate_id: &str,
    schema: &str,
    rows: Vec<(Option<String>, Option<String>, i64, serde_json::Value)>,
) -> Result<(Option<Snapshot>, Vec<SerializedEvent>), sqlx::Error> {
    let mut snapshot = None;
    let mut events = Vec::with_capacity(rows.len());
    for (event_type, event_version, sequence, payload) in rows {
        match (event_type, event_version) {
            (Some(event_type), Some(event_version)) => events.push(SerializedEvent::new(
                aggregate_id.to_owned(),
                usize::try_from(sequence).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                aggregate_type.to_owned(),
                event_type,
                event_version,
                payload,
                serde_json::json!({}),
            )),
            _ => {
                snapshot = Some(Snapshot {
                    sequence,
                    schema: schema.to_owned(),
                    payload,
                })
            }
        }
    }
    Ok((snapshot, events))
}
