//! The models projection on SQLite: folds a batch of `ProcessModel` events with the shared
//! in-memory fold ([`crate::models::fold::Batch`]) and writes the result with one upsert
//! (and one insert of published versions) per batch.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use uuid::Uuid;

use super::time::to_text;
use crate::error::ProjectionError;
use crate::event::StoredEvent;
use crate::models::fold::{Batch, Folded, VersionLookup, AGGREGATE_TYPE};
use crate::models::{JsonText, ModelRow, VersionRow};

/// Rows per statement: SQLite allows 32 766 bound values, a model row binds 16.
const CHUNK: usize = 1_000;

pub(crate) const MODEL_COLUMNS: &str = "id, tenant_id, process_key, name, category, \
     description, version, status, model_json, created_by, created_time, updated_by, \
     updated_time, revision";

/// Applies the `ProcessModel` events among `events` (others are skipped).
pub(crate) async fn apply(
    conn: &mut SqliteConnection,
    events: &[&StoredEvent],
) -> Result<(), ProjectionError> {
    let events: Vec<&StoredEvent> = events
        .iter()
        .copied()
        .filter(|e| e.aggregate_type == AGGREGATE_TYPE)
        .collect();
    if events.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(events.len());
    for event in &events {
        let id = Uuid::parse_str(&event.aggregate_id)
            .map_err(|e| ProjectionError::failed(event.global_position, e))?;
        ids.push(id);
    }
    ids.sort_unstable();
    ids.dedup();
    let existing = load(conn, &ids).await?;
    let mut batch = Batch::new(existing.into_iter().map(|row| (row.id, row)).collect());
    let mut versions = SqliteVersions { conn: &mut *conn };
    for event in events {
        batch.apply(&mut versions, event).await?;
    }
    let Folded {
        rows: models,
        versions,
        ..
    } = batch.finish();
    insert_versions(conn, &versions).await?;
    upsert(conn, &models).await?;
    Ok(())
}

/// Deletes every model and version (the start of a rebuild).
pub(crate) async fn clear(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM model_versions")
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM process_models")
        .execute(conn)
        .await?;
    Ok(())
}

/// Published versions from `model_versions`, for restores of versions older than the batch.
struct SqliteVersions<'c> {
    conn: &'c mut SqliteConnection,
}

#[async_trait]
impl VersionLookup for SqliteVersions<'_> {
    async fn version_json(
        &mut self,
        model_id: Uuid,
        version: i32,
    ) -> Result<Option<JsonText>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT model_json FROM model_versions WHERE model_id = ? AND version = ?",
        )
        .bind(model_id)
        .bind(version)
        .fetch_optional(&mut *self.conn)
        .await
    }
}

async fn load(conn: &mut SqliteConnection, ids: &[Uuid]) -> Result<Vec<ModelRow>, sqlx::Error> {
    let mut rows = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let mut query = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {MODEL_COLUMNS} FROM process_models WHERE id IN ("
        ));
        let mut list = query.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        query.push(")");
        rows.extend(query.build_query_as().fetch_all(&mut *conn).await?);
    }
    Ok(rows)
}

/// Writes the final image of every touched row. `name_lower` is Rust's Unicode lowercase,
/// so the name filter folds case like PostgreSQL's `lower()` (SQLite's folds ASCII only).
async fn upsert(conn: &mut SqliteConnection, rows: &[ModelRow]) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(CHUNK) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO process_models (id, tenant_id, process_key, name, name_lower, category, \
             description, version, status, model_json, created_by, created_time, updated_by, \
             updated_time, revision) ",
        );
        query.push_values(chunk, |mut row, model| {
            row.push_bind(model.id)
                .push_bind(&model.tenant_id)
                .push_bind(&model.process_key)
                .push_bind(&model.name)
                .push_bind(model.name.to_lowercase())
                .push_bind(&model.category)
                .push_bind(&model.description)
                .push_bind(model.version)
                .push_bind(&model.status)
                .push_bind(&model.model_json)
                .push_bind(&model.created_by)
                .push_bind(to_text(model.created_time))
                .push_bind(&model.updated_by)
                .push_bind(to_text(model.updated_time))
                .push_bind(model.revision);
        });
        query.push(
            " ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
             name_lower = excluded.name_lower, category = excluded.category, \
             description = excluded.description, version = excluded.version, \
             status = excluded.status, model_json = COALESCE(excluded.model_json, model_json), \
             updated_by = excluded.updated_by, updated_time = excluded.updated_time, \
             revision = excluded.revision",
        );
        query.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Adds published versions; a version row never changes once written. A version without
/// its JSON (`None`: the JSON stored before the batch) takes the model row's, so this runs
/// before [`upsert`] rewrites the rows.
async fn insert_versions(
    conn: &mut SqliteConnection,
    rows: &[VersionRow],
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(CHUNK) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "WITH v (model_id, version, tenant_id, process_key, name, model_json, comment, \
             published_by, published_time) AS (",
        );
        query.push_values(chunk, |mut row, version| {
            row.push_bind(version.model_id)
                .push_bind(version.version)
                .push_bind(&version.tenant_id)
                .push_bind(&version.process_key)
                .push_bind(&version.name)
                .push_bind(&version.model_json)
                .push_bind(&version.comment)
                .push_bind(&version.published_by)
                .push_bind(to_text(version.published_time));
        });
        // `WHERE true`: without it SQLite would read `ON CONFLICT` as part of the join.
        query.push(
            ") INSERT INTO model_versions (model_id, version, tenant_id, process_key, name, \
             model_json, comment, published_by, published_time) \
             SELECT v.model_id, v.version, v.tenant_id, v.process_key, v.name, \
             COALESCE(v.model_json, (SELECT m.model_json FROM process_models m \
             WHERE m.id = v.model_id)), v.comment, v.published_by, v.published_time \
             FROM v WHERE true ON CONFLICT (model_id, version) DO NOTHING",
        );
        query.build().execute(&mut *conn).await?;
    }
    Ok(())
}
