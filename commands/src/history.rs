//! Reading a stream's history straight from the event store, with the store's own columns
//! (position, time) that cqrs-es does not expose.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

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

/// The events of one stream in sequence order.
#[tracing::instrument(skip(pool))]
pub async fn load_history(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Vec<HistoryEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sequence, global_position, event_type, event_version, payload, metadata, recorded_at
           FROM events
          WHERE aggregate_type = $1 AND aggregate_id = $2
          ORDER BY sequence",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_all(pool)
    .await
}

/// The store position of one event of a stream (the last one a command wrote, say).
pub async fn position_of(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
    sequence: i64,
) -> Result<Option<StorePosition>, sqlx::Error> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT tx_id::text, global_position FROM events
          WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(sequence)
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(tx, global_position)| {
        tx.parse().ok().map(|tx_id| StorePosition {
            tx_id,
            global_position,
        })
    }))
}
