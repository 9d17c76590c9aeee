//! SQL of the `process_models` and `model_versions` tables: batched reads and writes. Each
//! statement takes the tables it uses ([`Tables`]): the partitioned tables for the active
//! generation, a rebuild's own tables otherwise.

use chrono::{DateTime, Utc};
use domain::EditorJson;
use serde::Deserialize;
use serde_json::value::RawValue;
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::FAMILY;
use crate::checkpoint::{Move, Seen};
use crate::error::ProjectionError;
use crate::generation::{self, Target, TARGET_CTE};

/// The partitioned tables of the family.
pub(crate) const MODELS_TABLE: &str = "process_models";
pub(crate) const VERSIONS_TABLE: &str = "model_versions";

/// The tables a projector writing one [`Target`] uses.
#[derive(Debug, Clone)]
pub(crate) struct Tables {
    pub(crate) target: Target,
    pub(crate) models: String,
    pub(crate) versions: String,
}

impl Tables {
    pub(crate) fn of(target: Target) -> Self {
        Self {
            target,
            models: target.table(MODELS_TABLE),
            versions: target.table(VERSIONS_TABLE),
        }
    }
}

/// Editor JSON as the database holds it (`jsonb` in PostgreSQL, `TEXT` in SQLite), carried
/// from the events to the rows and from the rows to the answers as text, never as a
/// `serde_json::Value` tree (see [`EditorJson`]).
pub type JsonText = Json<Box<RawValue>>;

/// `json`'s text as a row's value.
pub fn json_text(json: &EditorJson) -> JsonText {
    Json(json.as_raw().to_owned())
}

/// `json` decoded, for a look inside (tests, mostly): decodes on every call.
pub fn json_value(json: &JsonText) -> serde_json::Value {
    serde_json::from_str(json.get()).expect("stored JSON text is valid JSON")
}

/// One `process_models` row of one generation.
#[derive(Debug, Clone, FromRow, Deserialize)]
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
    /// projector batch that did not change it (writing the row then keeps the stored value,
    /// see [`write_models`]).
    pub model_json: Option<JsonText>,
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
    /// The frozen editor JSON; `None` in a projector batch where it is the model's JSON as
    /// stored before the batch ([`insert_versions`] copies it from the row).
    pub model_json: Option<JsonText>,
    pub comment: Option<String>,
    pub published_by: Option<String>,
    pub published_time: DateTime<Utc>,
}

/// The generation `target` writes and its rows among `ids`, in one statement, without their
/// editor JSON. It is often the bulk of a row (tens of KB, stored out of line): a batch
/// neither reads it nor rewrites it unless an event sets it, and a publish copies it inside
/// the database ([`insert_versions`]). `counting`: the caller keeps the model counts of
/// the rows it writes in this transaction ([`super::counts::TAKE_OVER`]).
pub(super) async fn load_models(
    conn: &mut PgConnection,
    tables: &Tables,
    ids: &[Uuid],
    counting: bool,
) -> Result<(i64, Vec<ModelRow>), ProjectionError> {
    let also = if counting {
        LoadAlso::TakeOverCounts
    } else {
        LoadAlso::Nothing
    };
    let loaded = load(conn, tables, ids, also).await?;
    Ok((loaded.generation, loaded.rows))
}

/// What a live step without a transaction reads first: the generation, the rows among
/// `ids`, and the checkpoint row `checkpoint` as it is in the same snapshot (`None` where
/// it is missing), which the step's write then moves only if it is still that version.
pub(super) async fn load_for_live_step(
    conn: &mut PgConnection,
    tables: &Tables,
    ids: &[Uuid],
    checkpoint: &str,
) -> Result<Loaded, ProjectionError> {
    load(conn, tables, ids, LoadAlso::Checkpoint(checkpoint)).await
}

/// What the rows' statement reads besides them.
enum LoadAlso<'a> {
    Nothing,
    /// Takes the model counts over for the transaction ([`super::counts::TAKE_OVER`]).
    TakeOverCounts,
    /// The checkpoint row of that name ([`Seen`]).
    Checkpoint(&'a str),
}

pub(super) struct Loaded {
    pub(super) generation: i64,
    pub(super) rows: Vec<ModelRow>,
    /// The checkpoint row, where it was asked for and exists.
    pub(super) checkpoint: Option<Seen>,
}

async fn load(
    conn: &mut PgConnection,
    tables: &Tables,
    ids: &[Uuid],
    also: LoadAlso<'_>,
) -> Result<Loaded, ProjectionError> {
    let models = &tables.models;
    let (columns, join) = match also {
        LoadAlso::Nothing => (String::new(), String::new()),
        LoadAlso::TakeOverCounts => (
            String::new(),
            format!(
                "CROSS JOIN (SELECT {}) AS counts_taken_over",
                super::counts::TAKE_OVER
            ),
        ),
        LoadAlso::Checkpoint(_) => (
            format!("{}, ", Seen::COLUMNS),
            "LEFT JOIN projection_checkpoints cp ON cp.name = $4".to_owned(),
        ),
    };
    // The left join keeps one row (the generation, no model) when no model matches.
    let sql = format!(
        "WITH {TARGET_CTE}
         SELECT target.generation, {columns}
                m.id, m.tenant_id, m.process_key, m.name, m.category,
                m.description, m.version, m.status, NULL::jsonb AS model_json,
                m.created_by, m.created_time,
                m.updated_by, m.updated_time, m.revision
           FROM target
           {join}
           LEFT JOIN {models} m ON m.generation = target.generation AND m.id = ANY($3)"
    );
    // The live step's load runs only after a batch read ahead, in a catch-up, on a
    // connection that keeps generic plans: planned once per connection, its plan was made
    // while the table was still empty and then scanned the whole generation on every
    // step until the table's statistics changed (docs/performance.md, "The models
    // projector's step in two statements"). Unprepared, it is planned for the table as it
    // is, once per batch of a catch-up.
    let prepared = !matches!(also, LoadAlso::Checkpoint(_));
    let mut query = sqlx::query(&sql)
        .persistent(prepared)
        .bind(tables.target.fixed())
        .bind(FAMILY)
        .bind(ids);
    if let LoadAlso::Checkpoint(name) = also {
        query = query.bind(name);
    }
    let rows = query.fetch_all(conn).await?;
    let Some(first) = rows.first() else {
        return Err(sqlx::Error::RowNotFound.into());
    };
    let generation = generation::required(first.try_get("generation")?)?;
    let checkpoint = match also {
        LoadAlso::Checkpoint(_) => Seen::from_row(first)?,
        _ => None,
    };
    let mut models = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.try_get::<Option<Uuid>, _>("id")?.is_some() {
            models.push(ModelRow::from_row(row)?);
        }
    }
    Ok(Loaded {
        generation,
        rows: models,
        checkpoint,
    })
}

pub(super) async fn version_json(
    conn: &mut PgConnection,
    tables: &Tables,
    generation: i64,
    model_id: Uuid,
    version: i32,
) -> Result<Option<JsonText>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT model_json FROM {}
          WHERE generation = $1 AND model_id = $2 AND version = $3",
        tables.versions
    ))
    .bind(generation)
    .bind(model_id)
    .bind(version)
    .fetch_optional(conn)
    .await
}

/// A batch's writes as one statement: each part is a data-modifying `WITH` item, and
/// PostgreSQL runs every such item once, all on the snapshot taken before the statement.
/// One round trip instead of one per table, in the projector step that every command's
/// read-your-writes wait sits behind (docs/performance.md, "Event payloads as json; one
/// write per batch").
///
/// A live step's statement also moves the checkpoint ([`BatchWrite::moving_checkpoint`])
/// and writes the rest only if it did: every item reads its rows from a source guarded by
/// [`BatchWrite::guard`].
pub(super) struct BatchWrite<'a> {
    sql: QueryBuilder<'a, Postgres>,
    parts: usize,
    guard: &'static str,
}

/// The guard of a statement that moves the checkpoint: true once `moved` has moved it. An
/// uncorrelated `EXISTS` is a one-time filter, evaluated before the item's first row, so
/// the checkpoint's `UPDATE` (and its `RETURNING`) runs before any row is written.
const MOVED: &str = "EXISTS (SELECT FROM moved)";

impl<'a> BatchWrite<'a> {
    pub(super) fn new() -> Self {
        Self {
            sql: QueryBuilder::new("WITH "),
            parts: 0,
            guard: "TRUE",
        }
    }

    /// A statement whose first item moves the checkpoint as `step` says, if its row is
    /// still the version `seen` (compare-and-set, see [`Seen`]), and takes the model counts
    /// over for its transaction as it does so, before any row is written (the row
    /// triggers check it as each row is written). The other items write only if it moved.
    pub(super) fn moving_checkpoint(step: Move<'_>, seen: &Seen) -> Self {
        let mut write = Self::new();
        write.guard = MOVED;
        write
            .item("moved")
            .push("UPDATE projection_checkpoints cp SET tx_id = ");
        write.bind(step.to.tx_id_text(), "text::xid8");
        write.sql.push(", global_position = ");
        write.bind(step.to.global_position, "int8");
        write.sql.push(", updated_at = now() WHERE cp.name = ");
        write.bind(step.name.to_owned(), "text");
        write.sql.push(" AND cp.xmin = ");
        write.bind(seen.row_version.clone(), "text::xid");
        write.sql.push(" AND cp.tx_id = ");
        write.bind(step.from.tx_id_text(), "text::xid8");
        write.sql.push(" AND cp.global_position = ");
        write.bind(step.from.global_position, "int8");
        write
            .sql
            .push(format!(" RETURNING {})", super::counts::TAKE_OVER));
        write
    }

    /// The condition every item's source adds to its `WHERE`: `TRUE`, or that the
    /// checkpoint moved.
    pub(super) fn guard(&self) -> &'static str {
        self.guard
    }

    /// Starts the next `WITH` item.
    pub(super) fn item(&mut self, name: &str) -> &mut QueryBuilder<'a, Postgres> {
        if self.parts > 0 {
            self.sql.push(", ");
        }
        self.parts += 1;
        self.sql.push(name).push(" AS (");
        &mut self.sql
    }

    /// Binds `value` as a parameter cast to `type_name`.
    pub(super) fn bind<T>(&mut self, value: T, type_name: &str) -> &mut QueryBuilder<'a, Postgres>
    where
        T: 'a + sqlx::Encode<'a, Postgres> + sqlx::Type<Postgres>,
    {
        self.sql.push_bind(value).push("::").push(type_name)
    }

    /// Runs the statement (nothing when no part was added).
    pub(super) async fn execute(mut self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        if self.parts == 0 {
            return Ok(());
        }
        self.sql.push(" SELECT 1");
        self.sql.build().execute(conn).await?;
        Ok(())
    }

    /// Runs a statement made by [`BatchWrite::moving_checkpoint`]: whether it moved the
    /// checkpoint (and so wrote the rest).
    pub(super) async fn execute_moving(
        mut self,
        conn: &mut PgConnection,
    ) -> Result<bool, sqlx::Error> {
        debug_assert_eq!(self.guard, MOVED, "a statement that moves the checkpoint");
        self.sql.push(" SELECT ").push(MOVED);
        self.sql.build_query_scalar().fetch_one(conn).await
    }
}

/// The final image of every touched row: an `UPDATE` of the rows that are stored
/// (`is_stored`), an `INSERT` of the others (created in the batch). An updated row without
/// its editor JSON keeps the stored one; a new row always has it (it comes from
/// `ModelCreated`). Not one `INSERT … ON CONFLICT DO UPDATE`: that checks `NOT NULL` on the
/// row it would insert, so it cannot leave the editor JSON out, and it probes for the
/// conflict first, which an `UPDATE` of a row known to exist need not.
pub(super) fn write_models<'a>(
    write: &mut BatchWrite<'a>,
    tables: &Tables,
    generation: i64,
    rows: Vec<ModelRow>,
    is_stored: impl Fn(&Uuid) -> bool,
) {
    if rows.is_empty() {
        return;
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
        stored.push(is_stored(&row.id));
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
    // Only the items the rows need: a join of the table with rows none of which it holds
    // is no cheaper for matching nothing (a rebuild's batch of new models).
    let (any_stored, any_new) = (stored.iter().any(|s| *s), stored.iter().any(|s| !*s));
    write.item("r").push("SELECT * FROM UNNEST(");
    write.bind(id, "uuid[]").push(", ");
    write.bind(tenant_id, "text[]").push(", ");
    write.bind(process_key, "text[]").push(", ");
    write.bind(name, "text[]").push(", ");
    write.bind(category, "text[]").push(", ");
    write.bind(description, "text[]").push(", ");
    write.bind(version, "int4[]").push(", ");
    write.bind(status, "text[]").push(", ");
    write.bind(model_json, "jsonb[]").push(", ");
    write.bind(created_by, "text[]").push(", ");
    write.bind(created_time, "timestamptz[]").push(", ");
    write.bind(updated_by, "text[]").push(", ");
    write.bind(updated_time, "timestamptz[]").push(", ");
    write.bind(revision, "int8[]").push(", ");
    let guard = write.guard();
    write
        .bind(stored, "bool[]")
        .push(
            ") AS r(id, tenant_id, process_key, name, category, description, version, status,
                model_json, created_by, created_time, updated_by, updated_time, revision,
                stored)
          WHERE ",
        )
        .push(guard)
        .push(")");
    let models = &tables.models;
    if any_stored {
        write.item("updated").push(format!(
            "UPDATE {models} m SET
                 name = r.name, category = r.category, description = r.description,
                 version = r.version, status = r.status,
                 model_json = COALESCE(r.model_json, m.model_json),
                 updated_by = r.updated_by, updated_time = r.updated_time,
                 revision = r.revision
               FROM r
              WHERE r.stored AND m.generation = "
        ));
        write.bind(generation, "int8").push(" AND m.id = r.id)");
    }
    if any_new {
        write.item("inserted").push(format!(
            "INSERT INTO {models}
                 (generation, id, tenant_id, process_key, name, category, description, version,
                  status, model_json, created_by, created_time, updated_by, updated_time,
                  revision)
             SELECT "
        ));
        write.bind(generation, "int8").push(
            ", id, tenant_id, process_key, name, category, description, version, status,
                model_json, created_by, created_time, updated_by, updated_time, revision
               FROM r
              WHERE NOT r.stored)",
        );
    }
}

/// Adds published versions; a version row never changes once written. A version without
/// its JSON (`None`) takes the model row's as stored before the statement (the snapshot
/// every item of a [`BatchWrite`] reads), so [`write_models`] may rewrite the row in the
/// same statement. Copied inside the database, the stored (compressed) value is neither
/// sent, parsed nor compressed again.
pub(super) fn insert_versions<'a>(
    write: &mut BatchWrite<'a>,
    tables: &Tables,
    generation: i64,
    rows: Vec<VersionRow>,
) {
    if rows.is_empty() {
        return;
    }
    let n = rows.len();
    let mut model_id = Vec::with_capacity(n);
    let mut version = Vec::with_capacity(n);
    let mut tenant_id = Vec::with_capacity(n);
    let mut process_key = Vec::with_capacity(n);
    let mut name = Vec::with_capacity(n);
    let mut model_json = Vec::with_capacity(n);
    let mut comment = Vec::with_capacity(n);
    let mut published_by = Vec::with_capacity(n);
    let mut published_time = Vec::with_capacity(n);
    for row in rows {
        model_id.push(row.model_id);
        version.push(row.version);
        tenant_id.push(row.tenant_id);
        process_key.push(row.process_key);
        name.push(row.name);
        model_json.push(row.model_json);
        comment.push(row.comment);
        published_by.push(row.published_by);
        published_time.push(row.published_time);
    }
    let Tables {
        models, versions, ..
    } = tables;
    write.item("frozen").push(format!(
        "INSERT INTO {versions}
             (generation, model_id, version, tenant_id, process_key, name, model_json, comment,
              published_by, published_time)
         SELECT "
    ));
    write.bind(generation, "int8").push(
        ", v.model_id, v.version, v.tenant_id, v.process_key, v.name,
                COALESCE(v.model_json, m.model_json), v.comment, v.published_by,
                v.published_time
           FROM UNNEST(",
    );
    write.bind(model_id, "uuid[]").push(", ");
    write.bind(version, "int4[]").push(", ");
    write.bind(tenant_id, "text[]").push(", ");
    write.bind(process_key, "text[]").push(", ");
    write.bind(name, "text[]").push(", ");
    write.bind(model_json, "jsonb[]").push(", ");
    write.bind(comment, "text[]").push(", ");
    write.bind(published_by, "text[]").push(", ");
    write.bind(published_time, "timestamptz[]").push(format!(
        ") AS v(model_id, version, tenant_id, process_key, name, model_json, comment,
                 published_by, published_time)
           LEFT JOIN {models} m ON m.generation = "
    ));
    let guard = write.guard();
    write
        .bind(generation, "int8")
        .push(" AND m.id = v.model_id WHERE ")
        .push(guard)
        .push(" ON CONFLICT (generation, model_id, version) DO NOTHING)");
}
