//! The cqrs-es event repository over the embedded SQLite event store.
//!
//! `sqlite-es` 0.5 was the first choice but falls short here: its table has no global
//! position (the feed's order) and it recognises an optimistic-lock conflict only by the
//! primary-key error code of its own table layout. This repository writes the same columns
//! into our `events` table (migrations/sqlite) and maps its `UNIQUE (aggregate_type,
//! aggregate_id, sequence)` violation to a conflict. Snapshots are not used.

use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use futures::TryStreamExt as _;
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

const SELECT_STREAM: &str = "SELECT aggregate_type, aggregate_id, sequence, event_type, \
     event_version, payload, metadata FROM events \
     WHERE aggregate_type = ? AND aggregate_id = ? AND sequence > ? ORDER BY sequence";

const SELECT_TYPE: &str = "SELECT aggregate_type, aggregate_id, sequence, event_type, \
     event_version, payload, metadata FROM events \
     WHERE aggregate_type = ? ORDER BY global_position";

/// The first event of a commit takes the position it is about to get as the commit's id
/// (`tx_id`); the others get the same id (see migrations/sqlite/0001_events.sql).
const INSERT: &str = "INSERT INTO events \
     (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, tx_id) \
     VALUES (?, ?, ?, ?, ?, ?, ?, coalesce(?, \
         (SELECT coalesce(max(seq), 0) + 1 FROM sqlite_sequence WHERE name = 'events'))) \
     RETURNING tx_id";

/// Buffer of a replay stream (events in flight between the reading task and the consumer).
const REPLAY_BUFFER: usize = 256;

/// Events of every aggregate type in one SQLite `events` table.
#[derive(Debug, Clone)]
pub struct SqliteEventRepository {
    pool: SqlitePool,
}

impl SqliteEventRepository {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    async fn select<A: Aggregate>(
        &self,
        aggregate_id: &str,
        after: i64,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let rows = sqlx::query(SELECT_STREAM)
            .bind(A::TYPE)
            .bind(aggregate_id)
            .bind(after)
            .fetch_all(&self.pool)
            .await
            .map_err(persistence_error)?;
        rows.iter().map(decode).collect()
    }
}

impl PersistedEventRepository for SqliteEventRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.select::<A>(aggregate_id, 0).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let after = i64::try_from(last_sequence)
            .map_err(|e| PersistenceError::UnknownError(Box::new(e)))?;
        self.select::<A>(aggregate_id, after).await
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        _aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        Ok(None)
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        _snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        let mut tx = self.pool.begin().await.map_err(persistence_error)?;
        let mut commit: Option<i64> = None;
        for event in events {
            let sequence = i64::try_from(event.sequence)
                .map_err(|e| PersistenceError::UnknownError(Box::new(e)))?;
            let tx_id: i64 = sqlx::query_scalar(INSERT)
                .bind(A::TYPE)
                .bind(&event.aggregate_id)
                .bind(sequence)
                .bind(&event.event_type)
                .bind(&event.event_version)
                .bind(&event.payload)
                .bind(&event.metadata)
                .bind(commit)
                .fetch_one(&mut *tx)
                .await
                .map_err(persistence_error)?;
            commit = Some(tx_id);
        }
        tx.commit().await.map_err(persistence_error)
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        Ok(replay(
            self.pool.clone(),
            SELECT_STREAM,
            vec![A::TYPE.to_owned(), aggregate_id.to_owned()],
        ))
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        Ok(replay(
            self.pool.clone(),
            SELECT_TYPE,
            vec![A::TYPE.to_owned()],
        ))
    }
}

/// Streams rows into a [`ReplayStream`] from a background task; errors travel in the stream.
fn replay(pool: SqlitePool, sql: &'static str, binds: Vec<String>) -> ReplayStream {
    let (mut feed, stream) = ReplayStream::new(REPLAY_BUFFER);
    tokio::spawn(async move {
        let mut query = sqlx::query(sql);
        for bind in &binds {
            query = query.bind(bind);
        }
        if sql == SELECT_STREAM {
            query = query.bind(0_i64);
        }
        let mut rows = query.fetch(&pool);
        loop {
            let item = match rows.try_next().await {
                Ok(Some(row)) => decode(&row),
                Ok(None) => return,
                Err(error) => Err(persistence_error(error)),
            };
            let failed = item.is_err();
            // A closed channel means the consumer stopped reading: nothing left to do.
            if feed.push(item).await.is_err() || failed {
                return;
            }
        }
    });
    stream
}

fn decode(row: &SqliteRow) -> Result<SerializedEvent, PersistenceError> {
    let read = || -> Result<SerializedEvent, sqlx::Error> {
        let sequence: i64 = row.try_get("sequence")?;
        Ok(SerializedEvent::new(
            row.try_get("aggregate_id")?,
            usize::try_from(sequence).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            row.try_get("aggregate_type")?,
            row.try_get("event_type")?,
            row.try_get("event_version")?,
            row.try_get("payload")?,
            row.try_get("metadata")?,
        ))
    };
    read().map_err(|e| PersistenceError::DeserializationError(Box::new(e)))
}

/// A unique violation on the stream's sequence is another writer's append: a conflict.
fn persistence_error(error: sqlx::Error) -> PersistenceError {
    if let Some(db) = error.as_database_error() {
        if db.is_unique_violation() {
            return PersistenceError::OptimisticLockError;
        }
        // SQLITE_BUSY (5) / SQLITE_LOCKED (6): the writer lock was not granted in time.
        if matches!(db.code().as_deref(), Some("5" | "6" | "517" | "262")) {
            return PersistenceError::ConnectionError(Box::new(error));
        }
        return PersistenceError::UnknownError(Box::new(error));
    }
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            PersistenceError::ConnectionError(Box::new(error))
        }
        other => PersistenceError::UnknownError(Box::new(other)),
    }
}
