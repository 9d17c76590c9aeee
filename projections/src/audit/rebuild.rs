//! Rebuilding the audit log into the next generation (see [`crate::rebuild`]): the rows and
//! hashes come out identical to the live ones, so a swapped-in rebuild keeps the chain's
//! `last_hash`.

use super::fill::AuditFill;
use super::projector::{AuditProjector, FAMILY, NAME};
use super::store::TABLE;
use crate::rebuild::{Fill, Rebuildable};
use crate::runner::Projector;

/// The audit log as a [`Rebuildable`] read model.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditRebuild;

impl Rebuildable for AuditRebuild {
    fn family(&self) -> &'static str {
        FAMILY
    }

    fn live_name(&self) -> &str {
        NAME
    }

    fn projector_for(&self, generation: i64) -> Box<dyn Projector> {
        Box::new(AuditProjector::rebuild(generation))
    }

    fn tables(&self) -> &'static [&'static str] {
        &[TABLE]
    }

    /// The chain kept in memory, each batch's rows written on several connections.
    fn fill_for(&self, generation: i64) -> Box<dyn Fill> {
        Box::new(AuditFill::new(generation))
    }
}
