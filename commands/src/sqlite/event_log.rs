//! The embedded SQLite event store as the command service uses it (see [`crate::store`]).
//!
//! `sqlite-es` 0.5 was the first choice but falls short here: its table has no global
//! position (the feed's order) and it recognises an optimistic-lock conflict only by the
//! primary-key error code of its own table layout. This writes our `events` table
//! (migrations/sqlite), whose `UNIQUE (aggregate_type, aggregate_id, sequence)` violation is
//! a conflict.

use async_trait::async_trait;
use sqlx::SqlitePool;

use crate::history::{HistoryEvent, StorePosition};

use crate::store::{
    commit_head, split_stream, AppendError, EventLog, NewEvent, Snapshot, StoredSnapshot,
    StreamEvent,
};

/// The first event of a commit takes the position it is about to get as the commit's id
/// (`tx_id`); the others get the same id (see migrations/sqlite/0001_events.sql).
const INSERT: &str = "INSERT INTO events \
     (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, tx_id) \
     VALUES (?, ?, ?, ?, ?, ?, ?, coalesce(?, \
         (SELECT coalesce(max(seq), 0) + 1 FROM sqlite_sequence WHERE name = 'events'))) \
     RETURNING tx_id, global_position";

/// [`EventLog`] over the embedded store. Its `global_position` is commit order; `tx_id`
/// is the commit's first global position.
#[derive(Debug, Clone)]
pub struct SqliteEventLog {
    pool: SqlitePool,
}

impl SqliteEventLog {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl EventLog for SqliteEventLog {
    /// One transaction (SQLite has one writer at a time: the commit is atomic and its
    /// positions consecutive).
    async fn append(&self, events: &[NewEvent]) -> Result<StorePosition, AppendError> {
        commit_head(events)?;
        let mut tx = self.pool.begin().await.map_err(AppendError::from_sqlx)?;
        let mut last: Option<StorePosition> = None;
        for event in events {
            let sequence =
                i64::try_from(event.sequence).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            let (tx_id, global_position): (i64, i64) = sqlx::query_as(INSERT)
                .bind(&event.aggregate_type)
                .bind(&event.aggregate_id)
                .bind(sequence)
                .bind(&event.event_type)
                .bind(&event.event_version)
                .bind(&event.payload)
                .bind(&event.metadata)
                .bind(last.map(|position| position.tx_id))
                .fetch_one(&mut *tx)
                .await
                .map_err(AppendError::from_sqlx)?;
            last = Some(StorePosition {
                tx_id,
                global_position,
            });
        }
        tx.commit().await.map_err(AppendError::from_sqlx)?;
        last.ok_or_else(|| AppendError::Store(sqlx::Error::RowNotFound))
    }

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

    async fn load_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        schema: &str,
    ) -> Result<(Option<StoredSnapshot>, Vec<StreamEvent>), sqlx::Error> {
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
        .map(|(t, v, s, p, _): (Option<String>, Option<String>, i64, String, i64)| (t, v, s, p))
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
