//! The PostgreSQL event store as the command service uses it (see [`crate::store`]).

use async_trait::async_trait;
use sqlx::PgPool;

use crate::history::{HistoryEvent, StorePosition};
use cqrs_es::persist::SerializedEvent;

use crate::store::{
    commit_head, split_stream, AppendError, EventLog, Snapshot, StoredSnapshot, StreamEvent,
};

/// One commit, one statement: an implicit transaction, so it is atomic without `BEGIN` and
/// `COMMIT`, and the statement-level `NOTIFY` trigger fires once. `global_position`,
/// `tx_id` and `recorded_at` take their defaults (migrations/0001). sqlx has no `xid8`
/// type: the transaction id travels as text.
///
/// A commit must continue the stream: its first sequence is 1 or follows a stored event
/// (an index probe), else it writes nothing. The unique key stops a writer whose state is
/// behind the store; this stops one whose state is ahead of it (a cached state after the
/// database was restored from a backup under a running server).
const APPEND: &str = "INSERT INTO events
        (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
     SELECT $1, $2, e.sequence, e.event_type, e.event_version, e.payload, e.metadata
       FROM UNNEST($3::bigint[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[])
            WITH ORDINALITY AS e(sequence, event_type, event_version, payload, metadata, n)
      WHERE $3[1] = 1
         OR EXISTS (SELECT FROM events p
                     WHERE p.aggregate_type = $1 AND p.aggregate_id = $2
                       AND p.sequence = $3[1] - 1)
      ORDER BY e.n
     RETURNING tx_id::text, global_position";

/// [`EventLog`] over PostgreSQL; positions are `(tx_id, global_position)`.
#[derive(Debug, Clone)]
pub struct PgEventLog {
    pool: PgPool,
}

impl PgEventLog {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl EventLog for PgEventLog {
    async fn append(&self, events: &[SerializedEvent]) -> Result<StorePosition, AppendError> {
        let first = commit_head(events)?;
        let mut sequences = Vec::with_capacity(events.len());
        for event in events {
            sequences
                .push(i64::try_from(event.sequence).map_err(|e| sqlx::Error::Encode(Box::new(e)))?);
        }
        let rows: Vec<(String, i64)> = sqlx::query_as(APPEND)
            .bind(&first.aggregate_type)
            .bind(&first.aggregate_id)
            .bind(sequences)
            .bind(
                events
                    .iter()
                    .map(|e| e.event_type.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                events
                    .iter()
                    .map(|e| e.event_version.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(events.iter().map(|e| &e.payload).collect::<Vec<_>>())
            .bind(events.iter().map(|e| &e.metadata).collect::<Vec<_>>())
            .fetch_all(&self.pool)
            .await
            .map_err(AppendError::from_sqlx)?;
        if rows.is_empty() {
            // The stream does not reach the commit's first sequence.
            return Err(AppendError::Conflict);
        }
        // One statement, one transaction: every row has the same `tx_id`.
        rows.into_iter()
            .max_by_key(|(_, global_position)| *global_position)
            .and_then(|(tx, global_position)| {
                Some(StorePosition {
                    tx_id: tx.parse().ok()?,
                    global_position,
                })
            })
            .ok_or_else(|| {
                AppendError::Store(sqlx::Error::Protocol(
                    "the append returned no readable position".into(),
                ))
            })
    }

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

    async fn load_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        schema: &str,
    ) -> Result<(Option<StoredSnapshot>, Vec<StreamEvent>), sqlx::Error> {
        let rows = sqlx::query_as(
            "WITH s AS (
                 SELECT sequence, payload FROM aggregate_snapshots
                  WHERE aggregate_type = $1 AND aggregate_id = $2 AND schema = $3)
             SELECT NULL::text, NULL::text, sequence, payload::text, 0 AS part FROM s
             UNION ALL
             SELECT event_type, event_version, sequence, payload::text, 1 FROM events
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
        .map(|(t, v, s, p, _): (Option<String>, Option<String>, i64, String, i32)| (t, v, s, p))
        .collect();
        Ok(split_stream(rows))
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
