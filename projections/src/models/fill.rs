//! The rebuild's fill of `process_models` and `model_versions`: the feed folded in memory
//! across batches, each model written once per window instead of once per batch.
//!
//! Why: the projector's batches load and rewrite every model they touch, so a model edited
//! in 20 batches is read 20 times and written 20 times, and that upkeep was most of the
//! rebuild's database work (docs/performance.md). Here a window holds the rows of every
//! model seen since it opened; it is written out, in parts on [`FILL_WRITERS`] connections,
//! when its estimated memory passes the rebuild's budget and at the end. A model written by an
//! earlier window is loaded again (without its editor JSON) when an event touches it.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use sqlx::PgPool;
use uuid::Uuid;

use super::fold::{self, Batch, PgVersions};
use super::store::{self, ModelRow, Tables, VersionRow};
use super::Rows;
use crate::checkpoint;
use crate::error::ProjectionError;
use crate::event::StoredEvent;
use crate::generation::Target;
use crate::position::Position;
use crate::rebuild::{Fill, RebuildError, FILL_WRITERS};
use crate::runner::begin_step;

/// The memory of a row held, without its editor JSON: the struct, its strings and the map
/// entry (≈ 900 bytes measured: 250 000 rows loaded took ≈ 230 MB).
const ROW_BYTES: usize = 1024;
/// Memory of a decoded editor JSON per byte of its event's stored text (a
/// `serde_json::Value` tree: maps, strings and their allocations; ≈ 6.5 measured).
const JSON_TREE_FACTOR: usize = 8;
/// Rows of one write statement.
const ROWS_PER_WRITE: usize = 5_000;

/// The fill of a rebuild into one generation (see the module's documentation).
pub(super) struct ModelsFill {
    tables: Tables,
    generation: i64,
    /// The rebuild's checkpoint name.
    name: String,
    window: Batch,
    /// The estimated memory the window holds, and how much it may.
    held: usize,
    window_bytes: usize,
    /// Models an earlier window wrote to the generation.
    written: HashSet<Uuid>,
    last: Option<Position>,
}

impl ModelsFill {
    pub(super) fn new(generation: i64, name: String, window_bytes: usize) -> Self {
        Self {
            tables: Tables::of(Target::Fixed(generation)),
            generation,
            name,
            window: Batch::new(Rows::new()),
            held: 0,
            window_bytes,
            written: HashSet::new(),
            last: None,
        }
    }

    /// Writes the window's rows and versions, and starts an empty one.
    async fn write_window(&mut self, pool: &PgPool) -> Result<(), RebuildError> {
        let window = std::mem::replace(&mut self.window, Batch::new(Rows::new()));
        self.held = 0;
        let fold::Folded { rows, versions } = window.finish();
        let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
        let parts = in_parts(rows, versions);
        let (tables, generation, written) = (&self.tables, self.generation, &self.written);
        futures::stream::iter(parts)
            .map(|(rows, versions)| async move {
                let mut tx = begin_step(pool).await?;
                // Versions first: one that freezes the JSON an earlier window stored copies
                // it from the row before the row is rewritten.
                store::insert_versions(&mut tx, tables, generation, versions).await?;
                store::write_models(&mut tx, tables, generation, rows, written).await?;
                tx.commit().await?;
                Ok::<(), RebuildError>(())
            })
            .buffer_unordered(FILL_WRITERS as usize)
            .try_collect::<()>()
            .await?;
        self.written.extend(ids);
        Ok(())
    }
}

/// The window's rows in parts of [`ROWS_PER_WRITE`], each with the versions of its models.
fn in_parts(
    rows: Vec<ModelRow>,
    versions: Vec<VersionRow>,
) -> Vec<(Vec<ModelRow>, Vec<VersionRow>)> {
    let mut part_of = HashMap::with_capacity(rows.len());
    let mut parts: Vec<(Vec<ModelRow>, Vec<VersionRow>)> = Vec::new();
    for (index, row) in rows.into_iter().enumerate() {
        let part = index / ROWS_PER_WRITE;
        if part == parts.len() {
            parts.push((Vec::with_capacity(ROWS_PER_WRITE), Vec::new()));
        }
        part_of.insert(row.id, part);
        parts[part].0.push(row);
    }
    for version in versions {
        // A publish touches its model, so the window holds the model's row.
        if let Some(&part) = part_of.get(&version.model_id) {
            parts[part].1.push(version);
        }
    }
    parts
}

#[async_trait]
impl Fill for ModelsFill {
    async fn push(
        &mut self,
        pool: &PgPool,
        batch: Vec<StoredEvent>,
        last: Position,
    ) -> Result<(), RebuildError> {
        self.last = Some(last);
        let events: Vec<&StoredEvent> = batch
            .iter()
            .filter(|e| e.aggregate_type == fold::AGGREGATE_TYPE)
            .collect();
        let mut ids = Vec::with_capacity(events.len());
        for event in &events {
            let id = Uuid::parse_str(&event.aggregate_id)
                .map_err(|e| ProjectionError::failed(event.global_position, e))?;
            ids.push(id);
        }
        let mut to_load: Vec<Uuid> = ids
            .iter()
            .filter(|id| self.written.contains(id) && !self.window.holds(id))
            .copied()
            .collect();
        to_load.sort_unstable();
        to_load.dedup();
        let rows_before = self.window.len();
        let mut conn = pool.acquire().await?;
        if !to_load.is_empty() {
            let (_, rows) = store::load_models(&mut conn, &self.tables, &to_load).await?;
            self.window.add_loaded(rows);
        }
        let mut versions = PgVersions {
            conn: &mut conn,
            tables: &self.tables,
            generation: self.generation,
        };
        for event in events {
            if matches!(
                event.event_type.as_str(),
                "ModelCreated" | "ModelJsonReplaced"
            ) {
                self.held += event.payload.as_text().len() * JSON_TREE_FACTOR;
            }
            self.window.apply(&mut versions, event).await?;
        }
        drop(conn);
        self.held += (self.window.len() - rows_before) * ROW_BYTES;
        if self.held >= self.window_bytes {
            self.write_window(pool).await?;
        }
        Ok(())
    }

    async fn finish(&mut self, pool: &PgPool) -> Result<(), RebuildError> {
        self.write_window(pool).await?;
        if let Some(last) = self.last {
            let mut tx = pool.begin().await?;
            checkpoint::save(&mut tx, &self.name, last).await?;
            tx.commit().await?;
        }
        Ok(())
    }
}
