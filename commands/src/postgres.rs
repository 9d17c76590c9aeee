//! Reads of the PostgreSQL event store's own columns (position, time) that cqrs-es does
//! not expose.

use async_trait::async_trait;
use sqlx::PgPool;

use crate::history::{HistoryEvent, StorePosition};
use cqrs_es::persist::SerializedEvent;

use crate::store::{split_stream, Snapshot, StoreReads};

/// [`StoreReads`] over PostgreSQL; positions are `(tx_id, global_position)`.
#[derive(Debug, Clone)]
pub struct PgReads {
    pool: PgPool,
}

impl PgReads {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl StoreReads for PgReads {
    #[tracing::instrument(skip(self))]
    async fn history(
        &self,
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
        .fetch_all(&self.pool)
        .await
    }

    async fn position_of(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        sequence: i64,
    ) -> Result<Option<StorePosition>, sqlx::Error> {
        // sqlx has no `xid8` type: the transaction id travels as text.
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT tx_id::text, global_position FROM events
              WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(sequence)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|(tx, global_position)| {
            tx.parse().ok().map(|tx_id| StorePosition {
                tx_id,
                global_position,
            })
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
                  WHERE aggregate_type = $1 AND aggregate_id = $2 AND schema = $3)
             SELECT NULL::text, NULL::text, sequence, payload, 0 AS part FROM s
             UNION ALL
             SELECT event_type, event_version, sequence, payload, 1 FROM events
              WHERE aggregate_type = $1 AND aggregate_id = $2
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
            |(t, v, s, p, _): (Option<String>, Option<String>, i64, serde_json::Value, i32)| {
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
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
                SET sequence = excluded.sequence, schema = excluded.schema,
                    payload = excluded.payload, updated_at = now()
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
