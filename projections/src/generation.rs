//! Generations of read tables. Every read-model row carries the generation it belongs to;
//! queries read the active one (`projection_generations.active`), a rebuild writes the next
//! one and one transaction makes it active.

use sqlx::PgExecutor;

use crate::error::ProjectionError;

/// Which generation a projector writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The generation queries read (the live projector).
    Active,
    /// A fixed generation (a rebuild in progress).
    Fixed(i64),
}

impl Target {
    /// The generation number to write, read inside the projector's transaction. The runner
    /// locks its checkpoint row before `apply`, and a swap holds that lock while it changes
    /// the active generation, so a live batch always sees the generation it must write.
    pub async fn resolve<'e>(
        &self,
        executor: impl PgExecutor<'e>,
        family: &str,
    ) -> Result<i64, ProjectionError> {
        match self {
            Self::Fixed(generation) => Ok(*generation),
            Self::Active => active(executor, family)
                .await
                .map_err(ProjectionError::from),
        }
    }
}

/// The active generation of a family of read tables (`process_models`, `audit_logs`).
pub async fn active<'e>(executor: impl PgExecutor<'e>, family: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT active FROM projection_generations WHERE name = $1")
        .bind(family)
        .fetch_one(executor)
        .await
}
