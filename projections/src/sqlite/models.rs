//! Reads of the SQLite `process_models` and `model_versions` tables, always scoped to one
//! tenant, with the semantics of [`crate::models::query`] (same filters, sorts, paging and
//! row types).

use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use uuid::Uuid;

use super::model_store::MODEL_COLUMNS;
use crate::models::query::{ListPage, ModelFilter, SortColumn};
use crate::models::{ModelRow, VersionRow};

fn sort_sql(column: SortColumn) -> &'static str {
    match column {
        SortColumn::Name => "name",
        SortColumn::Key => "process_key",
        SortColumn::CreatedTime => "created_time",
        SortColumn::UpdatedTime => "updated_time",
        SortColumn::Version => "version",
    }
}

/// One model of `tenant`, if it exists there.
pub async fn get(
    pool: &SqlitePool,
    tenant: &str,
    id: Uuid,
) -> Result<Option<ModelRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {MODEL_COLUMNS} FROM process_models WHERE tenant_id = ? AND id = ?"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(pool)
    .await
}

fn push_filters<'a>(
    query: &mut QueryBuilder<'a, Sqlite>,
    tenant: &'a str,
    filter: &'a ModelFilter,
) {
    query.push(" WHERE tenant_id = ").push_bind(tenant);
    if let Some(key) = &filter.key {
        query.push(" AND process_key = ").push_bind(key);
    }
    if let Some(pattern) = &filter.name_like {
        // As in PostgreSQL: a LIKE pattern, case-insensitive, a substring without `%`, and
        // `\` escapes a wildcard (PostgreSQL's default escape; SQLite needs it spelled out).
        let pattern = if pattern.contains('%') {
            pattern.to_lowercase()
        } else {
            format!("%{}%", pattern.to_lowercase())
        };
        query
            .push(" AND name_lower LIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\'");
    }
    if let Some(category) = &filter.category {
        query.push(" AND category = ").push_bind(category);
    }
    if let Some(status) = &filter.status {
        query.push(" AND status = ").push_bind(status);
    }
    if let Some(created_by) = &filter.created_by {
        query.push(" AND created_by = ").push_bind(created_by);
    }
}

/// A page of `tenant`'s models (without their editor JSON, which can be large: `model_json`
/// is `None`) and the total number that match, both from one snapshot.
pub async fn list(
    pool: &SqlitePool,
    tenant: &str,
    filter: &ModelFilter,
    page: ListPage,
) -> Result<(Vec<ModelRow>, i64), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut count = QueryBuilder::new("SELECT count(*) FROM process_models");
    push_filters(&mut count, tenant, filter);
    let total: i64 = count.build_query_scalar().fetch_one(&mut *tx).await?;
    if page.size <= 0 || page.start >= total {
        tx.rollback().await?;
        return Ok((Vec::new(), total));
    }
    let mut rows = QueryBuilder::new(
        "SELECT id, tenant_id, process_key, name, category, description, version, status, \
         NULL AS model_json, created_by, created_time, updated_by, updated_time, revision \
         FROM process_models",
    );
    push_filters(&mut rows, tenant, filter);
    let direction = if page.descending { "DESC" } else { "ASC" };
    // The id breaks ties so that paging is stable (bytes order as PostgreSQL's uuid order).
    rows.push(format!(
        " ORDER BY {} {direction}, id {direction}",
        sort_sql(page.sort)
    ));
    rows.push(" LIMIT ").push_bind(page.size);
    rows.push(" OFFSET ").push_bind(page.start.max(0));
    let rows = rows.build_query_as().fetch_all(&mut *tx).await?;
    tx.rollback().await?;
    Ok((rows, total))
}

/// The published versions of one of `tenant`'s models, oldest first (editor JSON left out).
pub async fn versions(
    pool: &SqlitePool,
    tenant: &str,
    id: Uuid,
) -> Result<Vec<VersionRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT model_id, version, tenant_id, process_key, name, 'null' AS model_json, comment, \
                published_by, published_time
           FROM model_versions WHERE tenant_id = ? AND model_id = ? ORDER BY version",
    )
    .bind(tenant)
    .bind(id)
    .fetch_all(pool)
    .await
}

/// One published version with its frozen editor JSON.
pub async fn version(
    pool: &SqlitePool,
    tenant: &str,
    id: Uuid,
    version: i32,
) -> Result<Option<VersionRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT model_id, version, tenant_id, process_key, name, model_json, comment, \
                published_by, published_time
           FROM model_versions WHERE tenant_id = ? AND model_id = ? AND version = ?",
    )
    .bind(tenant)
    .bind(id)
    .bind(version)
    .fetch_optional(pool)
    .await
}
