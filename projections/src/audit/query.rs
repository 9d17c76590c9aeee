//! Reading the audit log: one tenant's entries of the active generation, filtered, newest
//! first, a page at a time.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::{PgPool, Postgres, QueryBuilder};

use super::projector::FAMILY;
use super::row::{AuditResult, AuditRow, COLUMNS};
use crate::generation;

/// The largest page [`list`] returns.
pub const MAX_PAGE_SIZE: i64 = 1_000;

/// Which entries to list; every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditFilter {
    pub user_id: Option<String>,
    pub action: Option<String>,
    pub resource_id: Option<String>,
    pub result: Option<AuditResult>,
    /// Entries at or after this time (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Entries before this time (exclusive).
    pub to: Option<DateTime<Utc>>,
}

/// Which slice of the matching entries, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Entries to skip (negative counts as 0).
    pub start: i64,
    /// Most entries to return (clamped to `0..=`[`MAX_PAGE_SIZE`]).
    pub size: i64,
}

impl Default for Page {
    fn default() -> Self {
        Self { start: 0, size: 10 }
    }
}

/// `tenant_id`'s entries in the active generation that match `filter`, newest (highest
/// seq) first, the `page` slice of them, and how many match in all. Both come from one
/// snapshot.
pub async fn list(
    pool: &PgPool,
    tenant_id: &str,
    filter: &AuditFilter,
    page: &Page,
) -> Result<(Vec<AuditRow>, i64), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let generation = generation::active(&mut *tx, FAMILY).await?;

    let mut select = QueryBuilder::new(format!("SELECT {COLUMNS} FROM audit_logs"));
    matching(&mut select, generation, tenant_id, filter);
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
    matching(&mut count, generation, tenant_id, filter);
    let total: i64 = count.build_query_scalar().fetch_one(&mut *tx).await?;
    tx.rollback().await?;
    Ok((rows, total))
}

/// ` WHERE …` for the tenant's entries in `generation` that match `filter`.
fn matching(
    query: &mut QueryBuilder<'_, Postgres>,
    generation: i64,
    tenant_id: &str,
    filter: &AuditFilter,
) {
    query
        .push(" WHERE generation = ")
        .push_bind(generation)
        .push(" AND tenant_id = ")
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
        // A literal (from the enum, never user text), so the planner can use the partial
        // index on FAILURE rows, which a bind parameter would rule out in a generic plan.
        query.push(format!(" AND result = '{}'", result.as_str()));
    }
    if let Some(from) = filter.from {
        query.push(" AND \"timestamp\" >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        query.push(" AND \"timestamp\" < ").push_bind(to);
    }
}
