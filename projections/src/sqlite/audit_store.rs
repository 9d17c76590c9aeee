//! The audit projection on SQLite: extends the hash chain with the shared fold
//! ([`crate::audit::Chain`]), so rows and hashes are those PostgreSQL computes for the same
//! events; one tip update and one multi-row insert per batch.

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::time::to_text;
use crate::audit::{AuditRow, Chain};
use crate::error::ProjectionError;
use crate::event::StoredEvent;

/// Rows per statement: SQLite allows 32 766 bound values, an audit row binds 17.
const CHUNK: usize = 1_000;

/// The select list [`AuditRow::from_row`] expects.
pub(crate) const COLUMNS: &str = "id, user_id, action, resource, resource_id, ip_address, \
     user_agent, \"timestamp\", result, details, tenant_id, correlation_id, global_position, \
     tx_id, seq, prev_hash, hash";

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
    row.as_ref().map(AuditRow::from_row).transpose()
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
