//! The PostgreSQL event store as the command service uses it (see [`crate::store`]).

use async_trait::async_trait;
use sqlx::PgPool;

use crate::group_commit::{Commit, CommitEvent, GroupCommit};
use crate::history::{HistoryEvent, StorePosition};

use crate::store::{
    commit_head, split_stream, AppendError, EventLog, NewEvent, Snapshot, StoredSnapshot,
    StreamEvent,
};

/// [`EventLog`] over PostgreSQL; positions are `(tx_id, global_position)`. Appends of
/// concurrent commands are written together ([`crate::group_commit`]). Their loads are
/// not: read together by one query they cost PostgreSQL more CPU per command, not less
/// (docs/performance.md, "Group commit").
#[derive(Debug, Clone)]
pub struct PgEventLog {
    pool: PgPool,
    appends: GroupCommit,
}

impl PgEventLog {
    pub fn new(pool: PgPool) -> Self {
        Self {
            appends: GroupCommit::new(&pool),
            pool,
        }
    }
}

#[async_trait]
impl EventLog for PgEventLog {
    async fn append(&self, events: &[NewEvent]) -> Result<StorePosition, AppendError> {
        let first = commit_head(events)?;
        let mut commit = Commit {
            aggregate_type: first.aggregate_type.clone(),
            aggregate_id: first.aggregate_id.clone(),
            events: Vec::with_capacity(events.len()),
        };
        for event in events {
            commit.events.push(CommitEvent {
                sequence: i64::try_from(event.sequence).map_err(encode_error)?,
                event_type: event.event_type.clone(),
                event_version: event.event_version.clone(),
                payload: event.payload.clone(),
                metadata: event.metadata.clone(),
            });
        }
        self.appends.append(commit).await
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
             VALUES ($1, $2, $3, $4, $5::json)
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

/// A value of a commit that cannot be sent to the database.
fn encode_error(error: impl std::error::Error + Send + Sync + 'static) -> AppendError {
    AppendError::Store(sqlx::Error::Encode(Box::new(error)))
}
