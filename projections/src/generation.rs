//! Generations of read tables. Every read-model row carries the generation it belongs to;
//! queries read the active one (`projection_generations.active`), a rebuild writes the next
//! one and one transaction makes it active.
//!
//! Each generation of a table is a partition of its own, `<table>_g<N>` (ADR 0007): a
//! rebuild creates its generation's table with the primary key only, fills it, and attaches
//! it (which builds the other indexes once); the retired generation's table is dropped.
//! The tables take everything from their partitioned table, and the DDL is in functions of
//! migration 0009 that run as the schema's owner: the schema stays in `migrations/`.

use std::time::Duration;

use sqlx::{PgConnection, PgExecutor};

/// Which generation a projector writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The generation queries read (the live projector).
    Active,
    /// A fixed generation (a rebuild in progress).
    Fixed(i64),
}

impl Target {
    /// The generation number when it is fixed; `None` for [`Target::Active`], which is
    /// read inside the projector's transaction with [`TARGET_CTE`].
    pub fn fixed(&self) -> Option<i64> {
        match self {
            Self::Active => None,
            Self::Fixed(generation) => Some(*generation),
        }
    }

    /// Where a projector writing this target writes `table`'s rows: the partitioned table
    /// itself for the active generation (each row goes to its generation's partition), the
    /// generation's own table for a fixed one (a rebuild fills it before it is attached).
    pub fn table(&self, table: &str) -> String {
        match self {
            Self::Active => table.to_owned(),
            Self::Fixed(generation) => partition(table, *generation),
        }
    }
}

/// A `WITH` item naming the generation a [`Target`] writes: `target(generation)`, with
/// `$1` = [`Target::fixed`] and `$2` = the family. A projector reads it in the same
/// statement as the rows it needs (one round trip less per batch). It runs inside the
/// projector's transaction after the runner has locked its checkpoint row, and a swap holds
/// that lock while it changes the active generation, so a live batch always sees the
/// generation it must write. `NULL` when the family has no row.
pub(crate) const TARGET_CTE: &str = "target AS (SELECT COALESCE($1::int8, \
     (SELECT active FROM projection_generations WHERE name = $2)) AS generation)";

/// The generation read with [`TARGET_CTE`]; a family without a row is `RowNotFound`, as
/// for [`active`].
pub(crate) fn required(generation: Option<i64>) -> Result<i64, sqlx::Error> {
    generation.ok_or(sqlx::Error::RowNotFound)
}

/// The active generation of a family of read tables (`process_models`, `audit_logs`).
pub async fn active<'e>(executor: impl PgExecutor<'e>, family: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT active FROM projection_generations WHERE name = $1")
        .bind(family)
        .fetch_one(executor)
        .await
}

/// The table holding generation `generation` of `table` (as `generation_table_name` in
/// migration 0009 names it).
pub fn partition(table: &str, generation: i64) -> String {
    format!("{table}_g{generation}")
}

/// Creates generation `generation`'s table of `table`, empty and detached, with the
/// partitioned table's columns, defaults, CHECKs, storage and compression, its primary key
/// (a projector loads its rows by key) and no other index; a table of that name left by an
/// abandoned rebuild is dropped first. `fill_factor` leaves room in each page while the
/// rebuild fills it, for a table whose rows the rebuild rewrites: with the primary key as
/// the only index, a rewrite that fits in its page is a HOT update, which adds nothing to
/// the index. [`attach_partition`] resets it. The DDL is the schema owner's function
/// `generation_table_create` (migration 0009), so the server's role needs no DDL rights.
pub async fn create_partition(
    conn: &mut PgConnection,
    table: &str,
    generation: i64,
    fill_factor: Option<u8>,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT generation_table_create($1::regclass, $2, $3)")
        .bind(table)
        .bind(generation)
        .bind(fill_factor.map(i32::from))
        .execute(conn)
        .await?;
    Ok(())
}

/// Attaches generation `generation`'s table to `table`, which builds the partitioned
/// table's indexes on it, and gives it the partitioned table's fill factor back (pages
/// filled from then on are filled whole). It takes `SHARE UPDATE EXCLUSIVE` on `table`:
/// reads and writes of the other generations go on meanwhile.
pub async fn attach_partition(
    conn: &mut PgConnection,
    table: &str,
    generation: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT generation_table_attach($1::regclass, $2)")
        .bind(table)
        .bind(generation)
        .execute(conn)
        .await?;
    Ok(())
}

/// Analyzes generation `generation`'s table of `table`, or `table` itself with all its
/// partitions for `None` (autovacuum never analyzes a partitioned table). As the schema's
/// owner: `ANALYZE` skips, with a warning only, a table the caller does not own.
pub async fn analyze(
    conn: &mut PgConnection,
    table: &str,
    generation: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT generation_table_analyze($1::regclass, $2)")
        .bind(table)
        .bind(generation)
        .execute(conn)
        .await?;
    Ok(())
}

/// How often dropping a generation's table is tried. Each attempt waits at most 2 s for
/// the queries reading the partitioned table (`generation_table_drop` takes `ACCESS
/// EXCLUSIVE` on it, and queries arriving meanwhile queue behind it).
const DROP_ATTEMPTS: u32 = 5;
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// Drops every generation's table of `table` but `keep`'s, attached or not: the one a swap
/// retired, and any left by an abandoned rebuild or by an earlier drop that could not get
/// its lock. Returns the generations dropped.
pub async fn drop_partitions_except(
    conn: &mut PgConnection,
    table: &str,
    keep: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    let generations: Vec<i64> = sqlx::query_scalar("SELECT generation_tables($1::regclass)")
        .bind(table)
        .fetch_all(&mut *conn)
        .await?;
    let mut dropped = Vec::new();
    for generation in generations.into_iter().filter(|g| *g != keep) {
        drop_partition(conn, table, generation).await?;
        dropped.push(generation);
    }
    Ok(dropped)
}

async fn drop_partition(
    conn: &mut PgConnection,
    table: &str,
    generation: i64,
) -> Result<(), sqlx::Error> {
    let mut attempt = 1;
    loop {
        let dropped = sqlx::query("SELECT generation_table_drop($1::regclass, $2)")
            .bind(table)
            .bind(generation)
            .execute(&mut *conn)
            .await;
        match dropped {
            Ok(_) => return Ok(()),
            Err(sqlx::Error::Database(error))
                if error.code().as_deref() == Some(LOCK_NOT_AVAILABLE)
                    && attempt < DROP_ATTEMPTS =>
            {
                tracing::warn!(
                    table,
                    generation,
                    attempt,
                    "dropping a retired generation waits for its readers; retrying"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}
