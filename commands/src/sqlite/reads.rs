//! Reads of the SQLite event store's own columns (position, time).

use async_trait::async_trait;
use sqlx::SqlitePool;

use crate::history::{HistoryEvent, StorePosition};
use cqrs_es::persist::SerializedEvent;

use crate::store::{split_stream, Snapshot, StoreReads};

/// [`StoreReads`] over the embedded store. Its `global_position` is commit order; `tx_id`
/// is the commit's first global position.
#[derive(Debug, Clone)]
pub struct SqliteReads {
    pool: SqlitePool,
}

impl SqliteReads {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl StoreReads for SqliteReads {
    async fn history(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<HistoryEvent>, sqlx::Error> {
        sqlx::query_as(
            "SELECT sequence, global_position, event_type, event_version, payload, metadata,
                    recorded_at
               FROM events
              WHERE aggregate_type = ? AND aggregate_id = ?
              ORDER BY sequence",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .fetch_all(&self.pool)
        .await
    }

    async fn position_of(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        sequence: i64,
    ) -> Result<Option<StorePosition>, sqlx::Error> {
        let position: Option<(i64, i64)> = sqlx::query_as(
            "SELECT tx_id, global_position FROM events
              WHERE aggregate_type = ? AND aggregate_id = ? AND sequence = ?",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(sequence)
        .fetch_optional(&self.pool)
        .await?;
        Ok(position.map(|(tx_id, global_position)| StorePosition {
            tx_id,
            global_position,
        }))
    }

    async fn load_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        schema: &str,
    ) -> Result<(Option<Snapshot>, Vec<SerializedEvent>), sqlx::Error> {
        let rows = sqlx::query_as(
            "WITH s AS (
                 SELECT sequence, payload FROM aggregate_snapshots
                  WHERE aggregate_type = ?1 AND aggregate_id = ?2 AND schema = ?3)
             SELECT NULL, NULL, sequence, payload, 0 AS part FROM s
             UNION ALL
             SELECT event_type, event_version, sequence, payload, 1 FROM events
              WHERE aggregate_type = ?1 AND aggregate_id = ?2
                AND sequence > coalesce((SELECT sequence FROM s), 0)
             ORDER BY part, sequence",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(schema)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(
            |(t, v, s, p, _): (Option<String>, Option<String>, i64, serde_json::Value, i64)| {
                (t, v, s, p)
            },
        )
        .collect();
        split_stream(aggregate_type, aggregate_id, schema, rows)
    }

    async fn save_snapshot(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        snapshot: &Snapshot,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO aggregate_snapshots (aggregate_type, aggregate_id, sequence, schema, payload)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
                SET sequence = excluded.sequence, schema = excluded.schema,
                    payload = excluded.payload,
                    updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
              WHERE aggregate_snapshots.sequence < excluded.sequence
                 OR aggregate_snapshots.schema <> excluded.schema",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(snapshot.sequence)
        .bind(&snapshot.schema)
        .bind(&snapshot.payload)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
