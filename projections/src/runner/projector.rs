//! What a projector is: a named consumer that applies batches of events inside the
//! transaction that also saves its checkpoint.

use async_trait::async_trait;
use sqlx::{PgPool, Postgres, Transaction};

use crate::checkpoint::Move;
use crate::error::ProjectionError;
use crate::event::StoredEvent;
use crate::position::Position;

/// How a live step without a transaction ended ([`Projector::apply_live`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveOutcome {
    /// The effects and the checkpoint's move committed together.
    Applied,
    /// The checkpoint was not where the step expected (it is at the position given, or
    /// was written meanwhile): nothing was written.
    Moved(Position),
}

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

    /// The live runner's step in fewer round trips, for a projector that can write a whole
    /// batch in one statement: read what the batch needs outside a transaction, then write
    /// the effects and move the checkpoint (`step`, compare-and-set) in one statement that
    /// commits on its own, writing nothing when the checkpoint is not where it was read or
    /// its row was written meanwhile. `pool` commits without waiting for the WAL flush and
    /// uses generic plans ([`pg_support::projector_step_pool`]). The same contract as
    /// `apply` otherwise: on an error nothing is kept and the runner retries.
    ///
    /// `None` (the default): the projector has no such step, and the runner runs `apply` in
    /// a transaction that moves the checkpoint first. `pool` is then never used.
    ///
    /// `read`: the value of [`Self::read_also`] read with the batch, on the same snapshot;
    /// `None` where the batch was read without it (read ahead while the step before was
    /// being written, so what it would say could be out of date).
    async fn apply_live(
        &self,
        _pool: &PgPool,
        _step: Move<'_>,
        _events: &[StoredEvent],
        _read: Option<&str>,
    ) -> Option<Result<LiveOutcome, ProjectionError>> {
        None
    }

    /// A scalar SQL expression the live runner evaluates in the statement that reads a
    /// batch ([`crate::feed::read_next_also`]), for [`Self::apply_live`]: what the batch
    /// needs from the read tables, without a round trip of its own. `None` (the default):
    /// nothing.
    fn read_also(&self) -> Option<&str> {
        None
    }

    /// The transaction of the last `apply`, or the statement of the last `apply_live`, has
    /// committed. For effects that must not be seen before then (handing rows to waiting
    /// requests); never fails, and is not called for a batch that rolled back or wrote
    /// nothing.
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
