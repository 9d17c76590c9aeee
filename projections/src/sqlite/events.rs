//! Reading the SQLite `events` table as the feed: rows in `global_position` order (one
//! writer at a time, so that is commit order and no gate is needed), as [`StoredEvent`]s.
//!
//! SQLite has no transaction ids, but the audit log folds a command's events into one row
//! by their shared `tx_id` (PostgreSQL's appending transaction). Here the writer stores the
//! global position of the first event of each commit as its `tx_id` (see
//! migrations/sqlite/0001_events.sql), so `Position` orders exactly like `global_position`
//! and the audit rows are those PostgreSQL makes for the same history.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use crate::event::StoredEvent;
use crate::stored_json::StoredJson;

const COLUMNS: &str = "global_position, tx_id, aggregate_type, aggregate_id, sequence, \
     event_type, event_version, payload, metadata, recorded_at";

/// The tenant of an event row, as [`crate::relay::tenant_of`] decides it: a rejection
/// record's payload `tenantId`, else the metadata's `tenant_id` (strings only).
const TENANT_OF: &str = "COALESCE(\
     CASE WHEN aggregate_type = 'CommandRejection' AND json_type(payload, '$.tenantId') = 'text' \
          THEN json_extract(payload, '$.tenantId') END, \
     CASE WHEN json_type(metadata, '$.tenant_id') = 'text' \
          THEN json_extract(metadata, '$.tenant_id') END)";

fn decode(row: &SqliteRow) -> Result<StoredEvent, sqlx::Error> {
    let tx_id: i64 = row.try_get("tx_id")?;
    Ok(StoredEvent {
        global_position: row.try_get("global_position")?,
        tx_id: u64::try_from(tx_id).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: StoredJson::from_store(row.try_get("payload")?),
        metadata: StoredJson::from_store(row.try_get("metadata")?),
        recorded_at: row.try_get("recorded_at")?,
    })
}

/// Up to `limit` events after global position `after`, in feed order.
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
    rows.iter().map(decode).collect()
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

/// How many events come after global position `after`, and the age in seconds of the
/// oldest of them (`None` when there are none).
pub(crate) async fn lag_after(
    conn: &mut SqliteConnection,
    after: i64,
) -> Result<(i64, Option<f64>), sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*), (julianday('now') - julianday(min(recorded_at))) * 86400.0
           FROM events WHERE global_position > ?",
    )
    .bind(after)
    .fetch_one(conn)
    .await
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

/// Up to `limit` of `tenant`'s events after global position `after`, in feed order.
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
