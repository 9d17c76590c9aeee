//! Reading a stream's history straight from the event store, with the store's own columns
//! (position, time) that cqrs-es does not expose.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Where an event sits in the store: in commit-safe feed order, `(tx_id, global_position)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorePosition {
    pub tx_id: i64,
    pub global_position: i64,
}

/// One stored event as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEvent {
    pub sequence: i64,
    pub global_position: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: serde_json::Value,
    pub metadata: serde_json::Value,
    pub recorded_at: DateTime<Utc>,
}
