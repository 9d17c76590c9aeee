//! The audit projection on SQLite: extends the hash chain with the shared fold
//! ([`crate::audit::Chain`]), so rows and hashes are those PostgreSQL computes for the same
//! events; one tip update and one multi-row insert per batch.

use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::time::to_text;
use crate::audit::{AuditResult, AuditRow, Chain};
use crate::error::ProjectionError;
use crate::event::StoredEvent;

/// Rows per statement: SQLite allows 32 766 bound values, an audit row binds 17.
const CHUNK: usize = 1_000;

/// The select list [`from_row`] expects.
pub(crate) const COLUMNS: &str = "id, user_id, action, resource, resource_id, ip_address, \
     user_agent, \"timestamp\", result, details, tenant_id, correlation_id, global_position, \
     tx_id, seq, prev_hash, hash";

/// Decodes a row selected with [`COLUMNS`].
pub(crate) fn from_row(row: &SqliteRow) -> Result<AuditRow, sqlx::Error> {
    let result: &str = row.try_get("result")?;
    let result = AuditResult::parse(result).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: "result".to_owned(),
        source: format!("unknown audit result {result:?}").into(),
    })?;
    Ok(AuditRow {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        action: row.try_get("action")?,
        resource: row.try_get("resource")?,
        resource_id: row.try_get("resource_id")?,
        ip_address: row.try_get("ip_address")?,
        user_agent: row.try_get("user_agent")?,
        timestamp: row.try_get("timestamp")?,
        result,
        details: row.try_get("details")?,
        tenant_id: row.try_get("tenant_id")?,
        correlation_id: row.try_get("correlation_id")?,
        global_position: row.try_get("global_position")?,
        tx_id: row.try_get("tx_id")?,
        seq: row.try_get("seq")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Folds `events` (in feed order) into the chain after its stored tip.
pub(crate) async fn apply(
    conn: &mut SqliteConnection,
    events: &[&StoredEvent],
) -> Result<(), ProjectionError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut chain = Chain::after(tip(conn).await?);
    for event in events {
        chain.push(event)?;
    }
    let changes = chain.finish();
    if let Some(tip) = &changes.updated_tip {
        update_tip(conn, tip).await?;
    }
    insert(conn, &changes.appended).await?;
    Ok(())
}

/// Deletes the whole log (the start of a rebuild).
pub(crate) async fn clear(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM audit_logs").execute(conn).await?;
    Ok(())
}

async fn tip(conn: &mut SqliteConnection) -> Result<Option<AuditRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM audit_logs ORDER BY seq DESC LIMIT 1");
    let row = sqlx::query(&sql).fetch_optional(conn).await?;
    row.as_ref().map(from_row).transpose()
}

/// Rewrites the tip after its command got more events (only these columns change).
async fn update_tip(conn: &mut SqliteConnection, tip: &AuditRow) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE audit_logs SET details = ?, global_position = ?, hash = ? WHERE seq = ?")
        .bind(&tip.details)
        .bind(tip.global_position)
        .bind(&tip.hash)
        .bind(tip.seq)
        .execute(conn)
        .await?;
    Ok(())
}

async fn insert(conn: &mut SqliteConnection, rows: &[AuditRow]) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(CHUNK) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO audit_logs (seq, id, tenant_id, user_id, action, resource, resource_id, \
             ip_address, user_agent, \"timestamp\", result, details, correlation_id, \
             global_position, tx_id, prev_hash, hash) ",
        );
        query.push_values(chunk, |mut values, row| {
            values
                .push_bind(row.seq)
                .push_bind(row.id)
                .push_bind(&row.tenant_id)
                .push_bind(&row.user_id)
                .push_bind(&row.action)
                .push_bind(&row.resource)
                .push_bind(&row.resource_id)
                .push_bind(&row.ip_address)
                .push_bind(&row.user_agent)
                .push_bind(to_text(row.timestamp))
                .push_bind(row.result.as_str())
                .push_bind(&row.details)
                .push_bind(&row.correlation_id)
                .push_bind(row.global_position)
                .push_bind(row.tx_id)
                .push_bind(&row.prev_hash)
                .push_bind(&row.hash);
        });
        query.build().execute(&mut *conn).await?;
    }
    Ok(())
}
