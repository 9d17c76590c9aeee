//! Reads of the active generation of `process_models` and `model_versions`, always scoped
//! to one tenant.

use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::store::{ModelRow, VersionRow};
use super::FAMILY;

/// Sortable columns (the API's names map onto these; nothing else reaches the SQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    Name,
    Key,
    CreatedTime,
    UpdatedTime,
    Version,
}

impl SortColumn {
    fn sql(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Key => "process_key",
            Self::CreatedTime => "created_time",
            Self::UpdatedTime => "updated_time",
            Self::Version => "version",
        }
    }
}

/// Optional filters of a model list; all given ones must match.
#[derive(Debug, Clone, Default)]
pub struct ModelFilter {
    pub key: Option<String>,
    /// A `LIKE` pattern on the name, case-insensitive; without `%` it matches a substring.
    pub name_like: Option<String>,
    pub category: Option<String>,
    pub status: Option<String>,
    pub created_by: Option<String>,
}

/// Sorting and paging.
#[derive(Debug, Clone, Copy)]
pub struct ListPage {
    pub sort: SortColumn,
    pub descending: bool,
    pub start: i64,
    pub size: i64,
}

const ACTIVE: &str = "(SELECT active FROM projection_generations WHERE name = 'process_models')";

const MODEL_COLUMNS: &str = "id, tenant_id, process_key, name, category, description, version, \
     status, model_json, created_by, created_time, updated_by, updated_time, revision";

/// One model of `tenant`, if it exists there.
pub async fn get(pool: &PgPool, tenant: &str, id: Uuid) -> Result<Option<ModelRow>, sqlx::Error> {
    debug_assert_eq!(FAMILY, "process_models");
    sqlx::query_as(&format!(
        "SELECT {MODEL_COLUMNS} FROM process_models
          WHERE generation = {ACTIVE} AND tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(pool)
    .await
}

fn push_filters<'a>(
    query: &mut QueryBuilder<'a, Postgres>,
    tenant: &'a str,
    filter: &'a ModelFilter,
) {
    query.push(" WHERE generation = ").push(ACTIVE);
    query.push(" AND tenant_id = ").push_bind(tenant);
    if let Some(key) = &filter.key {
        query.push(" AND process_key = ").push_bind(key);
    }
    if let Some(pattern) = &filter.name_like {
        let pattern = if pattern.contains('%') {
            pattern.to_lowercase()
        } else {
            format!("%{}%", pattern.to_lowercase())
        };
        query.push(" AND lower(name) LIKE ").push_bind(pattern);
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

/// A page of `tenant`'s models (without their editor JSON, which can be large) and the
/// total number that match, both from one snapshot.
///
/// Without a name pattern both statements run with generic plans (`plan_cache_mode`, for
/// this transaction only): PostgreSQL otherwise keeps planning the page query afresh on
/// every call, because a generic plan's estimate for an unknown `LIMIT` looks worse than the
/// custom plans it had, and planning was about a quarter of a list's database time
/// (docs/performance.md, "List queries"). The key, category, status and creator filters and
/// every sort have an index whose use does not depend on the value. A name pattern keeps
/// custom plans: whether the trigram index or the sort index is the better way depends on
/// how many names the pattern matches (a generic plan took 38 ms for a rare pattern that the
/// trigram index answers at once).
pub async fn list(
    pool: &PgPool,
    tenant: &str,
    filter: &ModelFilter,
    page: ListPage,
) -> Result<(Vec<ModelRow>, i64), sqlx::Error> {
    let mut tx = pool
        .begin_with(if filter.name_like.is_some() {
            "BEGIN READ ONLY"
        } else {
            "BEGIN READ ONLY; SET LOCAL plan_cache_mode = force_generic_plan"
        })
        .await?;
    let total: i64 = total_query(tenant, filter)
        .build_query_scalar()
        .fetch_one(&mut *tx)
        .await?;
    if page.size == 0 || page.start >= total {
        tx.commit().await?;
        return Ok((Vec::new(), total));
    }
    let mut rows = QueryBuilder::new(
        "SELECT id, tenant_id, process_key, name, category, description, version, status, \
         NULL::jsonb AS model_json, created_by, created_time, updated_by, updated_time, revision \
         FROM process_models",
    );
    push_filters(&mut rows, tenant, filter);
    let direction = if page.descending { "DESC" } else { "ASC" };
    // The id breaks ties so that paging is stable.
    rows.push(format!(
        " ORDER BY {} {direction}, id {direction}",
        page.sort.sql()
    ));
    rows.push(" LIMIT ").push_bind(page.size);
    rows.push(" OFFSET ").push_bind(page.start);
    let rows = rows.build_query_as().fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok((rows, total))
}

/// The statement counting `tenant`'s models that match `filter`. Filtered by nothing but
/// category and status, it sums the counts the database keeps per tenant, category and
/// status (migration 0010): a `count(*)` fetches every matching row from the heap while the
/// visibility map lags behind recent writes. Any other filter counts the rows.
fn total_query<'a>(tenant: &'a str, filter: &'a ModelFilter) -> QueryBuilder<'a, Postgres> {
    let ModelFilter {
        key: None,
        name_like: None,
        created_by: None,
        category,
        status,
    } = filter
    else {
        let mut count = QueryBuilder::new("SELECT count(*) FROM process_models");
        push_filters(&mut count, tenant, filter);
        return count;
    };
    let mut sum = QueryBuilder::new(
        "SELECT coalesce(sum(models), 0)::bigint FROM process_model_counts WHERE generation = ",
    );
    sum.push(ACTIVE);
    sum.push(" AND tenant_id = ").push_bind(tenant);
    if let Some(category) = category {
        sum.push(" AND category = ").push_bind(category);
    }
    if let Some(status) = status {
        sum.push(" AND status = ").push_bind(status);
    }
    sum
}

/// The published versions of one of `tenant`'s models, oldest first (editor JSON left out).
pub async fn versions(
    pool: &PgPool,
    tenant: &str,
    id: Uuid,
) -> Result<Vec<VersionRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT model_id, version, tenant_id, process_key, name, 'null'::jsonb AS model_json,
                comment, published_by, published_time
           FROM model_versions
          WHERE generation = {ACTIVE} AND tenant_id = $1 AND model_id = $2
          ORDER BY version"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_all(pool)
    .await
}

/// One published version with its frozen editor JSON.
pub async fn version(
    pool: &PgPool,
    tenant: &str,
    id: Uuid,
    version: i32,
) -> Result<Option<VersionRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT model_id, version, tenant_id, process_key, name, model_json, comment,
                published_by, published_time
           FROM model_versions
          WHERE generation = {ACTIVE} AND tenant_id = $1 AND model_id = $2 AND version = $3"
    ))
    .bind(tenant)
    .bind(id)
    .bind(version)
    .fetch_optional(pool)
    .await
}
