//! Generations of read tables. Every read-model row carries the generation it belongs to;
//! queries read the active one (`projection_generations.active`), a rebuild writes the next
//! one and one transaction makes it active.

use sqlx::PgExecutor;

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
