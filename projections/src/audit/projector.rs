//! The `audit_logs` projector: appends the feed's commands and rejections to the hash chain
//! of its generation, one multi-row statement per batch.

use async_trait::async_trait;
use sqlx::{Postgres, Transaction};

use super::chain::Chain;
use super::store;
use crate::error::ProjectionError;
use crate::event::StoredEvent;
use crate::generation::Target;
use crate::runner::Projector;

/// The read-table family in `projection_generations`.
pub const FAMILY: &str = "audit_logs";
/// The live projector's checkpoint name ([`Target::Active`]).
pub const NAME: &str = "audit_logs";
/// A rebuild's checkpoint name ([`Target::Fixed`]). One rebuild at a time: before starting
/// one, delete this checkpoint and create the target generation's table empty
/// ([`crate::generation::create_partition`]), so it starts from position 0 on an empty chain
/// ([`crate::rebuild::rebuild`] does both).
pub const REBUILD_NAME: &str = "audit_logs@rebuild";

/// Projects the feed into `audit_logs` (see [`super::chain`] for what becomes a row).
/// Rows and hashes do not depend on how the runner batches the feed, so a rebuild
/// reproduces the live generation exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditProjector {
    /// The generation written: the active one (live) or a fixed one (rebuild).
    pub target: Target,
}

impl AuditProjector {
    /// The live projector, writing the active generation.
    pub fn live() -> Self {
        Self {
            target: Target::Active,
        }
    }

    /// A rebuild into `generation`.
    pub fn rebuild(generation: i64) -> Self {
        Self {
            target: Target::Fixed(generation),
        }
    }
}

#[async_trait]
impl Projector for AuditProjector {
    fn name(&self) -> &str {
        match self.target {
            Target::Active => NAME,
            Target::Fixed(_) => REBUILD_NAME,
        }
    }

    async fn apply(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let table = self.target.table(store::TABLE);
        let (generation, tip) = store::tip(tx, self.target, &table).await?;
        let mut chain = Chain::after(tip);
        for event in events {
            chain.push(event)?;
        }
        let changes = chain.finish();
        if let Some(tip) = &changes.updated_tip {
            store::update_tip(tx, &table, generation, tip).await?;
        }
        store::insert(tx, &table, generation, changes.appended).await?;
        Ok(())
    }
}
