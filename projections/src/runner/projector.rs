//! What a projector is: a named consumer that applies batches of events inside the
//! transaction that also saves its checkpoint.

use async_trait::async_trait;
use sqlx::{PgPool, Postgres, Transaction};

use crate::error::ProjectionError;
use crate::event::StoredEvent;

/// A consumer of the feed run by a [`crate::ProjectorRunner`].
///
/// `apply` gets a non-empty batch in feed order and the transaction in which the runner
/// then saves the checkpoint after the batch's last event: write every effect through `tx`
/// and the effects and the checkpoint commit together or not at all. On an error the
/// runner rolls back and retries the same events (one at a time, to pin down the failing
/// one) after a back-off; it never skips an event. So `apply` must not have effects
/// outside `tx` that cannot be repeated.
#[async_trait]
pub trait Projector: Send + Sync + 'static {
    /// The checkpoint name, also the source of the advisory lock key. Never rename a
    /// projector that has a checkpoint: it would start again from the beginning.
    fn name(&self) -> &str;

    /// Applies `events` (in feed order, at least one) through `tx`.
    async fn apply(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError>;

    /// The transaction of the last `apply` has committed. For effects that must not be seen
    /// before then (handing rows to waiting requests); never fails, and is not called for a
    /// batch that rolled back.
    fn committed(&self) {}
}

/// Begins the transaction of a projector step (effects and checkpoint) in one round trip,
/// committing without waiting for the WAL flush (ADR 0005): the runner's steps and a
/// rebuild's batches.
pub(crate) async fn begin_step(
    pool: &PgPool,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    pool.begin_with("BEGIN; SET LOCAL synchronous_commit = off")
        .await
}

/// Begins the live runner's step: as [`begin_step`], and its statements use their generic
/// plans. They have fixed shapes and find their rows by key, but PostgreSQL re-planned
/// some on most executions (the `model_versions` insert: its arrays' lengths made a custom
/// plan look cheaper), which cost more than running them (docs/performance.md, "Editor
/// JSON as text; plans made once"). A rebuild's batches keep custom plans: their
/// thousands of rows may call for other joins.
pub(crate) async fn begin_live_step(
    pool: &PgPool,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    pool.begin_with(
        "BEGIN; SET LOCAL synchronous_commit = off; SET LOCAL plan_cache_mode = force_generic_plan",
    )
    .await
}
