//! Reading the SQLite `events` table as the feed: rows in `global_position` order (one
//! writer at a time, so that is commit order and no gate is needed), as [`StoredEvent`]s.
//!
//! SQLite has no transaction ids, but the audit log folds a command's events into one row
//! by their shared `tx_id` (PostgreSQL's appending transaction). Here an event's `tx_id` is
//! the global position of the first event of its commit: a commit's events are contiguous
//! and share aggregate, consecutive sequences and the command's metadata (cqrs-es writes the
//! same metadata on every event of one commit). So `Position` orders exactly like
//! `global_position`, and the audit rows are those PostgreSQL makes for the same history.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use crate::event::StoredEvent;

const COLUMNS: &str = "global_position, aggregate_type, aggregate_id, sequence, event_type, \
     event_version, payload, metadata, recorded_at";

/// The tenant of an event row, as [`crate::relay::tenant_of`] decides it: a rejection
/// record's payload `tenantId`, else the metadata's `tenant_id` (strings only).
const TENANT_OF: &str = "COALESCE(\
     CASE WHEN aggregate_type = 'CommandRejection' AND json_type(payload, '$.tenantId') = 'text' \
          THEN json_extract(payload, '$.tenantId') END, \
     CASE WHEN json_type(metadata, '$.tenant_id') = 'text' \
          THEN json_extract(metadata, '$.tenant_id') END)";

/// A row, with `tx_id` = its own global position until [`assign_commits`] runs.
fn decode(row: &SqliteRow) -> Result<StoredEvent, sqlx::Error> {
    let global_position: i64 = row.try_get("global_position")?;
    Ok(StoredEvent {
        global_position,
        tx_id: u64::try_from(global_position).unwrap_or(0),
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: row.try_get("payload")?,
        metadata: row.try_get("metadata")?,
        recorded_at: row.try_get("recorded_at")?,
    })
}

/// Whether `next` (the event right after `prev` in the feed) was written by the same commit.
fn same_commit(prev: &StoredEvent, next: &StoredEvent) -> bool {
    prev.aggregate_type == next.aggregate_type
        && prev.aggregate_id == next.aggregate_id
        && next.sequence == prev.sequence + 1
        && prev.metadata == next.metadata
}

/// Up to `limit` events after global position `after`, in feed order, with commit ids.
pub(crate) async fn read_after(
    conn: &mut SqliteConnection,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM events WHERE global_position > ? ORDER BY global_position LIMIT ?"
    );
    let rows = sqlx::query(&sql)
        .bind(after)
        .bind(limit.max(1))
        .fetch_all(&mut *conn)
        .await?;
    let mut events = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
    assign_commits(conn, &mut events).await?;
    Ok(events)
}

/// Sets every event's `tx_id` to its commit's first global position. A batch may start in
/// the middle of a commit, so the first event's commit is traced back (a few rows at most).
async fn assign_commits(
    conn: &mut SqliteConnection,
    events: &mut [StoredEvent],
) -> Result<(), sqlx::Error> {
    let Some(first) = events.first() else {
        return Ok(());
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM events WHERE global_position < ? \
         ORDER BY global_position DESC LIMIT 1"
    );
    let mut current = first.clone();
    loop {
        let row = sqlx::query(&sql)
            .bind(current.global_position)
            .fetch_optional(&mut *conn)
            .await?;
        match row.as_ref().map(decode).transpose()? {
            Some(prev) if same_commit(&prev, &current) => current = prev,
            _ => break,
        }
    }
    let mut commit = u64::try_from(current.global_position).unwrap_or(0);
    for index in 0..events.len() {
        if index > 0 && !same_commit(&events[index - 1], &events[index]) {
            commit = u64::try_from(events[index].global_position).unwrap_or(0);
        }
        events[index].tx_id = commit;
    }
    Ok(())
}

/// Whether an event has this global position.
pub(crate) async fn exists(
    conn: &mut SqliteConnection,
    global_position: i64,
) -> Result<bool, sqlx::Error> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT global_position FROM events WHERE global_position = ?")
            .bind(global_position)
            .fetch_optional(conn)
            .await?;
    Ok(found.is_some())
}

/// How many events come after global position `after`.
pub(crate) async fn count_after(
    conn: &mut SqliteConnection,
    after: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE global_position > ?")
        .bind(after)
        .fetch_one(conn)
        .await
}

/// Up to `limit` of `tenant`'s events after global position `after`, in feed order (their
/// `tx_id` is left at the global position: envelopes do not carry it).
pub(crate) async fn tenant_page(
    conn: &mut SqliteConnection,
    tenant: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM events WHERE global_position > ? AND {TENANT_OF} = ? \
         ORDER BY global_position LIMIT ?"
    );
    let rows = sqlx::query(&sql)
        .bind(after)
        .bind(tenant)
        .bind(limit.max(1))
        .fetch_all(conn)
        .await?;
    rows.iter().map(decode).collect()
}
