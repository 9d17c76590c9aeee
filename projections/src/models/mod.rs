//! The `process_models` and `model_versions` read tables, built from `ProcessModel` events.
//!
//! A batch is folded in memory (one read of the touched rows, then one bulk upsert), a few
//! statements per batch instead of one per event; a rebuild folds the whole feed in its own
//! fill ([`fill::ModelsFill`]).

mod counts;
mod fill;
pub(crate) mod fold;
mod handover;
mod live;
pub mod query;
mod store;

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::checkpoint::Move;
use crate::error::ProjectionError;
use crate::event::StoredEvent;
use crate::generation::Target;
use crate::runner::{LiveOutcome, Projector};

pub use handover::{Expected, Handover};
pub use store::{json_text, json_value, JsonText, ModelRow, VersionRow};

/// The family name in `projection_generations`, and the live projector's checkpoint name.
pub const FAMILY: &str = "process_models";

/// Projects `ProcessModel` events into `process_models` and `model_versions`.
#[derive(Debug, Clone)]
pub struct ModelsProjector {
    tables: store::Tables,
    name: String,
    /// Where committed rows go to the requests waiting for them (the live projector).
    handover: Option<Handover>,
}

impl ModelsProjector {
    /// The live projector, writing the generation queries read.
    pub fn live() -> Self {
        Self {
            tables: store::Tables::of(Target::Active),
            name: FAMILY.to_owned(),
            handover: None,
        }
    }

    /// Hands the rows of each committed batch to the requests registered with `handover`.
    pub fn with_handover(mut self, handover: Handover) -> Self {
        self.handover = Some(handover);
        self
    }

    /// A rebuild into `generation`, with its own checkpoint.
    pub fn rebuild(generation: i64) -> Self {
        Self {
            tables: store::Tables::of(Target::Fixed(generation)),
            name: format!("{FAMILY}@rebuild"),
            handover: None,
        }
    }
}

impl ModelsProjector {
    /// The batch's `ProcessModel` events and the ids of their models (sorted, once each).
    /// Before anything else, rows staged by an attempt that failed are dropped: they must
    /// not reach a waiting request when this batch commits.
    fn begin_batch<'e>(
        &self,
        events: &'e [StoredEvent],
    ) -> Result<(Vec<&'e StoredEvent>, Vec<Uuid>), ProjectionError> {
        if let Some(handover) = &self.handover {
            handover.begin();
        }
        let events: Vec<&StoredEvent> = events
            .iter()
            .filter(|e| e.aggregate_type == fold::AGGREGATE_TYPE)
            .collect();
        let mut ids = Vec::with_capacity(events.len());
        for event in &events {
            let id = Uuid::parse_str(&event.aggregate_id)
                .map_err(|e| ProjectionError::failed(event.global_position, e))?;
            ids.push(id);
        }
        ids.sort_unstable();
        ids.dedup();
        Ok((events, ids))
    }

    /// Folds `events` onto the stored rows `existing` of `generation` and adds the batch's
    /// writes to `write`: one statement, in which a version that freezes the JSON stored
    /// before the batch copies it from the row as it was before the statement, whatever the
    /// statement writes. `conn` reads frozen versions the fold needs.
    async fn fold_into<'w>(
        &self,
        conn: &mut PgConnection,
        generation: i64,
        existing: Vec<store::ModelRow>,
        events: Vec<&StoredEvent>,
        write: &mut store::BatchWrite<'w>,
    ) -> Result<(), ProjectionError> {
        // The stored rows, with what each is counted under before the batch.
        let stored: HashMap<Uuid, counts::CountKey> = existing
            .iter()
            .map(|row| (row.id, counts::CountKey::of(row)))
            .collect();
        let mut batch = fold::Batch::new(existing.into_iter().map(|row| (row.id, row)).collect());
        let mut versions = fold::PgVersions {
            conn,
            tables: &self.tables,
            generation,
        };
        for event in events {
            batch.apply(&mut versions, event).await?;
        }
        let fold::Folded {
            rows: models,
            versions,
        } = batch.finish();
        if let Some(handover) = &self.handover {
            handover.stage(&models);
        }
        let count_changes = counts::changes(&stored, &models);
        store::insert_versions(write, &self.tables, generation, versions);
        store::write_models(write, &self.tables, generation, models, |id| {
            stored.contains_key(id)
        });
        counts::apply(write, generation, count_changes);
        Ok(())
    }
}

#[async_trait]
impl Projector for ModelsProjector {
    fn name(&self) -> &str {
        &self.name
    }

    async fn apply(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let (events, ids) = self.begin_batch(events)?;
        if events.is_empty() {
            return Ok(());
        }
        let (generation, existing) = store::load_models(tx, &self.tables, &ids, true).await?;
        let mut write = store::BatchWrite::new();
        self.fold_into(tx, generation, existing, events, &mut write)
            .await?;
        write.execute(tx).await?;
        Ok(())
    }

    /// The live projector's steps (not a rebuild's: its catch-up runs in the swap's
    /// transaction).
    async fn apply_live(
        &self,
        pool: &PgPool,
        step: Move<'_>,
        events: &[StoredEvent],
        read: Option<&str>,
    ) -> Option<Result<LiveOutcome, ProjectionError>> {
        if self.tables.target != Target::Active {
            return None;
        }
        Some(self.live_step(pool, step, events, read).await)
    }

    fn read_also(&self) -> Option<&str> {
        (self.tables.target == Target::Active).then(|| live::READ_ALSO.as_str())
    }

    fn committed(&self) {
        if let Some(handover) = &self.handover {
            handover.committed();
        }
    }
}

/// Rows touched by a batch, keyed by model id.
pub(crate) type Rows = HashMap<Uuid, store::ModelRow>;

/// Rebuilds of `process_models` and `model_versions`.
pub struct ModelsRebuild {
    /// The estimated memory the fill's window may hold ([`fill::ModelsFill`]).
    window_bytes: usize,
}

impl ModelsRebuild {
    /// The default window: 256 MiB.
    pub const DEFAULT_MEMORY: usize = 256 * 1024 * 1024;

    /// A rebuild whose fill holds at most about `bytes` of rows in memory.
    pub fn with_memory(bytes: usize) -> Self {
        Self {
            window_bytes: bytes,
        }
    }
}

impl Default for ModelsRebuild {
    fn default() -> Self {
        Self::with_memory(Self::DEFAULT_MEMORY)
    }
}

impl crate::rebuild::Rebuildable for ModelsRebuild {
    fn family(&self) -> &'static str {
        FAMILY
    }

    fn live_name(&self) -> &str {
        FAMILY
    }

    fn projector_for(&self, generation: i64) -> Box<dyn Projector> {
        Box::new(ModelsProjector::rebuild(generation))
    }

    fn tables(&self) -> &'static [&'static str] {
        &[store::MODELS_TABLE, store::VERSIONS_TABLE]
    }

    /// The feed folded in memory, each model written once per window.
    fn fill_for(&self, generation: i64) -> Box<dyn crate::rebuild::Fill> {
        Box::new(fill::ModelsFill::new(generation, self.window_bytes))
    }

    /// The fill rewrites a row it inserted earlier when its window closes: leave room for
    /// those rewrites to stay in their page. With the default memory over 1 000 000 events,
    /// 60 % took 12.9–13.2 s against 14.5–14.9 s for full pages (docs/performance.md,
    /// "Rebuild re-measured").
    fn fill_factor(&self, table: &str) -> Option<u8> {
        (table == store::MODELS_TABLE).then_some(60)
    }
}
