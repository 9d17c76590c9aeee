//! Reading and verifying the SQLite audit log, with the semantics of [`crate::audit`]: a
//! tenant's entries newest first, filtered and paged; and the chain walk of
//! [`crate::audit::verify`] (the same checks and report) over the SQLite rows.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use super::audit_store::COLUMNS;
use super::time::to_text;
use crate::audit::{walk, AuditFilter, AuditRow, ChainLookup, Page, VerifyReport, MAX_PAGE_SIZE};

/// SQLite keeps one generation of the audit log; reports name it 1.
pub const GENERATION: i64 = 1;

/// `tenant_id`'s entries that match `filter`, newest (highest seq) first, the `page` slice
/// of them, and how many match in all, both from one snapshot.
pub async fn list(
    pool: &SqlitePool,
    tenant_id: &str,
    filter: &AuditFilter,
    page: &Page,
) -> Result<(Vec<AuditRow>, i64), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut select = QueryBuilder::new(format!("SELECT {COLUMNS} FROM audit_logs"));
    matching(&mut select, tenant_id, filter);
    select
        .push(" ORDER BY seq DESC LIMIT ")
        .push_bind(page.size.clamp(0, MAX_PAGE_SIZE))
        .push(" OFFSET ")
        .push_bind(page.start.max(0));
    let rows = select.build().fetch_all(&mut *tx).await?;
    let rows = rows
        .iter()
        .map(AuditRow::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let mut count = QueryBuilder::new("SELECT count(*) FROM audit_logs");
    matching(&mut count, tenant_id, filter);
    let total: i64 = count.build_query_scalar().fetch_one(&mut *tx).await?;
    tx.rollback().await?;
    Ok((rows, total))
}

/// ` WHERE …` for the tenant's entries that match `filter`.
fn matching(query: &mut QueryBuilder<'_, Sqlite>, tenant_id: &str, filter: &AuditFilter) {
    query
        .push(" WHERE tenant_id = ")
        .push_bind(tenant_id.to_owned());
    let texts = [
        ("user_id", &filter.user_id),
        ("action", &filter.action),
        ("resource_id", &filter.resource_id),
    ];
    for (column, value) in texts {
        if let Some(value) = value {
            query
                .push(format!(" AND {column} = "))
                .push_bind(value.clone());
        }
    }
    if let Some(result) = filter.result {
        // A literal from the enum (never user text), so the partial FAILURE index applies.
        query.push(format!(" AND result = '{}'", result.as_str()));
    }
    // Stored timestamps are fixed-width RFC 3339 text: text order is time order.
    if let Some(from) = filter.from {
        query
            .push(" AND \"timestamp\" >= ")
            .push_bind(to_text(from));
    }
    if let Some(to) = filter.to {
        query.push(" AND \"timestamp\" < ").push_bind(to_text(to));
    }
}

/// Walks the chain in one read snapshot and reports the first row that was edited,
/// deleted, inserted or moved (see [`crate::audit::verify`]), including rows deleted from
/// or forged at the end (compared with the `audit_logs` projector's checkpoint).
pub async fn verify(pool: &SqlitePool) -> Result<VerifyReport, sqlx::Error> {
    // A deferred transaction: its first read fixes the snapshot (WAL), so the projector
    // appending meanwhile cannot make an intact chain look broken.
    let mut tx = pool.begin().await?;
    let report = walk(&mut SqliteChain { conn: &mut tx }, GENERATION, true).await?;
    tx.rollback().await?;
    Ok(report)
}

struct SqliteChain<'c> {
    conn: &'c mut SqliteConnection,
}

#[async_trait]
impl ChainLookup for SqliteChain<'_> {
    async fn page(&mut self, after: i64, limit: i64) -> Result<Vec<AuditRow>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM audit_logs WHERE seq > ? ORDER BY seq LIMIT ?");
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(limit)
            .fetch_all(&mut *self.conn)
            .await?;
        rows.iter().map(AuditRow::from_row).collect()
    }

    async fn prev_hash_after(&mut self, seq: i64) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT prev_hash FROM audit_logs WHERE seq > ? ORDER BY seq LIMIT 1")
            .bind(seq)
            .fetch_optional(&mut *self.conn)
            .await
    }

    async fn seq_of_hash(&mut self, hash: &str) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT seq FROM audit_logs WHERE hash = ? ORDER BY seq LIMIT 1")
            .bind(hash)
            .fetch_optional(&mut *self.conn)
            .await
    }

    async fn id_at(&mut self, seq: i64) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT id FROM audit_logs WHERE seq = ?")
            .bind(seq)
            .fetch_optional(&mut *self.conn)
            .await
    }

    async fn checkpoint(&mut self) -> Result<Option<(i64, i64)>, sqlx::Error> {
        sqlx::query_as("SELECT tx_id, global_position FROM projection_checkpoints WHERE name = ?")
            .bind(crate::audit::NAME)
            .fetch_optional(&mut *self.conn)
            .await
    }

    async fn first_beyond(
        &mut self,
        tx_id: i64,
        global_position: i64,
    ) -> Result<Option<(i64, i64)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT seq, id FROM audit_logs WHERE (tx_id, global_position) > (?, ?) \
             ORDER BY seq LIMIT 1",
        )
        .bind(tx_id)
        .bind(global_position)
        .fetch_optional(&mut *self.conn)
        .await
    }
}
