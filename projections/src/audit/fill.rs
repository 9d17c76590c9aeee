//! The rebuild's fill of `audit_logs`: the hash chain kept in memory across batches, and
//! each batch's rows written on [`FILL_WRITERS`] connections at once.
//!
//! Why: the projector reads the chain's tip back and may rewrite it in every batch, and
//! one connection wrote the rows while the other core idled (docs/performance.md). Here the
//! chain's last row is held back until the next batch shows whether its command goes on;
//! the rows before it are final, linked and hashed, so they can be written in any order.

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use sqlx::PgPool;

use super::chain::{Chain, Changes};
use super::row::AuditRow;
use super::store;
use crate::event::StoredEvent;
use crate::generation::Target;
use crate::rebuild::{in_parts, Fill, RebuildError, FILL_WRITERS};
use crate::runner::begin_step;

/// The fill of a rebuild into one generation (see the module's documentation).
pub(super) struct AuditFill {
    table: String,
    generation: i64,
    /// The chain's last row, not written yet: the next batch may extend it.
    tip: Option<AuditRow>,
}

impl AuditFill {
    pub(super) fn new(generation: i64) -> Self {
        Self {
            table: Target::Fixed(generation).table(store::TABLE),
            generation,
            tip: None,
        }
    }

    /// Appends `rows` in [`FILL_WRITERS`] parts, each in a transaction of its own.
    async fn write(&self, pool: &PgPool, rows: Vec<AuditRow>) -> Result<(), RebuildError> {
        let part = rows.len().div_ceil(FILL_WRITERS as usize);
        let (table, generation) = (&self.table, self.generation);
        futures::stream::iter(in_parts(rows, part))
            .map(|rows| async move {
                let mut tx = begin_step(pool).await?;
                store::insert(&mut tx, table, generation, rows).await?;
                tx.commit().await?;
                Ok::<(), RebuildError>(())
            })
            .buffer_unordered(FILL_WRITERS as usize)
            .try_collect::<()>()
            .await
    }
}

#[async_trait]
impl Fill for AuditFill {
    async fn push(&mut self, pool: &PgPool, batch: Vec<StoredEvent>) -> Result<(), RebuildError> {
        let held = self.tip.take();
        let mut chain = Chain::after(held.clone());
        for event in &batch {
            chain.push(event)?;
        }
        let Changes {
            updated_tip,
            appended,
        } = chain.finish();
        // The held row comes back rewritten when the batch extended it, and as it was
        // otherwise; either way it is not written yet.
        let mut rows: Vec<AuditRow> = updated_tip.or(held).into_iter().collect();
        rows.extend(appended);
        self.tip = rows.pop();
        self.write(pool, rows).await
    }

    async fn finish(&mut self, pool: &PgPool) -> Result<(), RebuildError> {
        let tip: Vec<AuditRow> = self.tip.take().into_iter().collect();
        self.write(pool, tip).await
    }
}
