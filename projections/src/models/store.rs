//! SQL of the `process_models` and `model_versions` tables: batched reads and writes.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, Row};
use uuid::Uuid;

use super::FAMILY;
use crate::generation::{self, Target, TARGET_CTE};

/// One `process_models` row of one generation.
#[derive(Debug, Clone, FromRow)]
pub struct ModelRow {
    pub id: Uuid,
    pub tenant_id: String,
    pub process_key: String,
    pub name: String,
    pub category: Option<String>,
    pub description: Option<String>,
    pub version: i32,
    pub status: String,
    /// The editor JSON; `None` where the row was read without it: a list page, or a
    /// projector batch that does not change or publish it (writing the row then keeps the
    /// stored value, see [`write_models`]).
    pub model_json: Option<serde_json::Value>,
    pub created_by: Option<String>,
    pub created_time: DateTime<Utc>,
    pub updated_by: Option<String>,
    pub updated_time: DateTime<Utc>,
    pub revision: i64,
}

/// One `model_versions` row: a published version, frozen.
#[derive(Debug, Clone, FromRow)]
pub struct VersionRow {
    pub model_id: Uuid,
    pub version: i32,
    pub tenant_id: String,
    pub process_key: String,
    pub name: String,
    pub model_json: serde_json::Value,
    pub comment: Option<String>,
    pub published_by: Option<String>,
    pub published_time: DateTime<Utc>,
}

/// The generation `target` writes and its rows among `ids`, in one statement; the editor
/// JSON only of the rows among `with_json`. A model's editor JSON is often the bulk of its
/// row (tens of KB, stored out of line): a batch that only renames or archives it neither
/// reads nor rewrites it.
pub(super) async fn load_models(
    conn: &mut PgConnection,
    target: Target,
    ids: &[Uuid],
    with_json: &[Uuid],
) -> Result<(i64, Vec<ModelRow>), sqlx::Error> {
    // The left join keeps one row (the generation, no model) when no model matches.
    let sql = format!(
        "WITH {TARGET_CTE}
         SELECT target.generation, m.id, m.tenant_id, m.process_key, m.name, m.category,
                m.description, m.version, m.status,
                CASE WHEN m.id = ANY($4) THEN m.model_json END AS model_json,
                m.created_by, m.created_time,
                m.updated_by, m.updated_time, m.revision
           FROM target
           LEFT JOIN process_models m ON m.generation = target.generation AND m.id = ANY($3)"
    );
    let rows = sqlx::query(&sql)
        .bind(target.fixed())
        .bind(FAMILY)
        .bind(ids)
        .bind(with_json)
        .fetch_all(conn)
        .await?;
    let Some(first) = rows.first() else {
        return Err(sqlx::Error::RowNotFound);
    };
    let generation = generation::required(first.try_get("generation")?)?;
    let mut models = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.try_get::<Option<Uuid>, _>("id")?.is_some() {
            models.push(ModelRow::from_row(row)?);
        }
    }
    Ok((generation, models))
}

pub(super) async fn version_json(
    conn: &mut PgConnection,
    generation: i64,
    model_id: Uuid,
    version: i32,
) -> Result<Option<serde_json::Value>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT model_json FROM model_versions
          WHERE generation = $1 AND model_id = $2 AND version = $3",
    )
    .bind(generation)
    .bind(model_id)
    .bind(version)
    .fetch_optional(conn)
    .await
}

/// Writes the final image of every touched row in one statement: an `UPDATE` of the rows
/// that were loaded (`existing`), an `INSERT` of the others (created in the batch). An
/// updated row without its editor JSON keeps the stored one; a new row always has it (it
/// comes from `ModelCreated`). Not one `INSERT … ON CONFLICT DO UPDATE`: that checks
/// `NOT NULL` on the row it would insert, so it cannot leave the editor JSON out, and it
/// probes for the conflict first, which an `UPDATE` of a row known to exist need not.
pub(super) async fn write_models(
    conn: &mut PgConnection,
    generation: i64,
    rows: Vec<ModelRow>,
    existing: &HashSet<Uuid>,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    // One array per column, moved out of the rows (no copies of the editor JSON).
    let n = rows.len();
    let mut id = Vec::with_capacity(n);
    let mut tenant_id = Vec::with_capacity(n);
    let mut process_key = Vec::with_capacity(n);
    let mut name = Vec::with_capacity(n);
    let mut category = Vec::with_capacity(n);
    let mut description = Vec::with_capacity(n);
    let mut version = Vec::with_capacity(n);
    let mut status = Vec::with_capacity(n);
    let mut model_json = Vec::with_capacity(n);
    let mut created_by = Vec::with_capacity(n);
    let mut created_time = Vec::with_capacity(n);
    let mut updated_by = Vec::with_capacity(n);
    let mut updated_time = Vec::with_capacity(n);
    let mut revision = Vec::with_capacity(n);
    let mut stored = Vec::with_capacity(n);
    for row in rows {
        stored.push(existing.contains(&row.id));
        id.push(row.id);
        tenant_id.push(row.tenant_id);
        process_key.push(row.process_key);
        name.push(row.name);
        category.push(row.category);
        description.push(row.description);
        version.push(row.version);
        status.push(row.status);
        model_json.push(row.model_json);
        created_by.push(row.created_by);
        created_time.push(row.created_time);
        updated_by.push(row.updated_by);
        updated_time.push(row.updated_time);
        revision.push(row.revision);
    }
    sqlx::query(
        "WITH r AS (
             SELECT * FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                                  $7::text[], $8::int4[], $9::text[], $10::jsonb[], $11::text[],
                                  $12::timestamptz[], $13::text[], $14::timestamptz[], $15::int8[],
                                  $16::bool[])
                 AS r(id, tenant_id, process_key, name, category, description, version, status,
                      model_json, created_by, created_time, updated_by, updated_time, revision,
                      stored)
         ), updated AS (
             UPDATE process_models m SET
                 name = r.name, category = r.category, description = r.description,
                 version = r.version, status = r.status,
                 model_json = COALESCE(r.model_json, m.model_json),
                 updated_by = r.updated_by, updated_time = r.updated_time, revision = r.revision
               FROM r
              WHERE r.stored AND m.generation = $1 AND m.id = r.id
         )
         INSERT INTO process_models
             (generation, id, tenant_id, process_key, name, category, description, version, status,
              model_json, created_by, created_time, updated_by, updated_time, revision)
         SELECT $1, id, tenant_id, process_key, name, category, description, version, status,
                model_json, created_by, created_time, updated_by, updated_time, revision
           FROM r
          WHERE NOT r.stored",
    )
    .bind(generation)
    .bind(id)
    .bind(tenant_id)
    .bind(process_key)
    .bind(name)
    .bind(category)
    .bind(description)
    .bind(version)
    .bind(status)
    .bind(model_json)
    .bind(created_by)
    .bind(created_time)
    .bind(updated_by)
    .bind(updated_time)
    .bind(revision)
    .bind(stored)
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds published versions; a version row never changes once written.
pub(super) async fn insert_versions(
    conn: &mut PgConnection,
    generation: i64,
    rows: &[VersionRow],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    macro_rules! column {
        ($field:ident) => {
            rows.iter().map(|r| r.$field.clone()).collect::<Vec<_>>()
        };
    }
    sqlx::query(
        "INSERT INTO model_versions
             (generation, model_id, version, tenant_id, process_key, name, model_json, comment,
              published_by, published_time)
         SELECT $1, * FROM UNNEST($2::uuid[], $3::int4[], $4::text[], $5::text[], $6::text[],
                                  $7::jsonb[], $8::text[], $9::text[], $10::timestamptz[])
         ON CONFLICT (generation, model_id, version) DO NOTHING",
    )
    .bind(generation)
    .bind(column!(model_id))
    .bind(column!(version))
    .bind(column!(tenant_id))
    .bind(column!(process_key))
    .bind(column!(name))
    .bind(column!(model_json))
    .bind(column!(comment))
    .bind(column!(published_by))
    .bind(column!(published_time))
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes one generation's rows (an abandoned rebuild, or the generation a swap retired).
pub async fn clear_generation(conn: &mut PgConnection, generation: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM model_versions WHERE generation = $1")
        .bind(generation)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM process_models WHERE generation = $1")
        .bind(generation)
        .execute(conn)
        .await?;
    Ok(())
}
