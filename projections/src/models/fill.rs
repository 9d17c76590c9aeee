//! The rebuild's fill of `process_models` and `model_versions`: the feed folded in memory
//! across batches, so a model is written once, or once per window, instead of once per
//! batch.
//!
//! Why: the projector's batches load and rewrite every model they touch, so a model edited
//! in 20 batches is read 20 times and written 20 times, and that upkeep was most of the
//! rebuild's database work (docs/performance.md). Here the window keeps the row of every
//! model touched since it opened, and when its estimated memory passes the rebuild's
//! budget it gives memory back in two steps:
//! 1. it inserts the models it created and the versions they published, and keeps those
//!    rows without their editor JSON (the bulk of a row in memory);
//! 2. if that is not enough, it rewrites the rows changed since their last write and starts
//!    empty; a model written before is loaded again (without its editor JSON) when an event
//!    touches it.
//!
//! At the end it does both. With memory for every model, each is written once.

use std::collections::HashSet;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use sqlx::PgPool;
use uuid::Uuid;

use super::fold::{self, Batch, PgVersions};
use super::store::{self, ModelRow, Tables, VersionRow};
use super::Rows;
use crate::error::ProjectionError;
use crate::event::StoredEvent;
use crate::generation::{self, Target};
use crate::rebuild::{in_parts, Fill, RebuildError, FILL_WRITERS};
use crate::runner::begin_step;

/// The memory of a row held without its editor JSON: the struct, its strings and the map
/// entry (≈ 900 bytes measured: 250 000 rows took ≈ 230 MB).
const ROW_BYTES: usize = 1024;
/// What a version, or a restore's JSON, is counted for: their events do not tell its size.
const COPIED_JSON_BYTES: usize = 4 * ROW_BYTES;
/// Rows of one write statement.
const ROWS_PER_WRITE: usize = 5_000;

/// The fill of a rebuild into one generation (see the module's documentation).
pub(super) struct ModelsFill {
    tables: Tables,
    generation: i64,
    window: Batch,
    /// The estimated memory of the editor JSON the window holds for models not yet in the
    /// table (with their versions), and for the others.
    json_new: usize,
    json_written: usize,
    /// How much the window may hold in all.
    window_bytes: usize,
    /// Models in the generation's table.
    written: HashSet<Uuid>,
    /// Models of the window whose row changed since it was last written.
    dirty: HashSet<Uuid>,
    /// How many models the table held when it was last analyzed.
    analyzed_at: usize,
}

impl ModelsFill {
    pub(super) fn new(generation: i64, window_bytes: usize) -> Self {
        Self {
            tables: Tables::of(Target::Fixed(generation)),
            generation,
            window: Batch::new(Rows::new()),
            json_new: 0,
            json_written: 0,
            window_bytes,
            written: HashSet::new(),
            dirty: HashSet::new(),
            analyzed_at: 0,
        }
    }

    fn over_budget(&self) -> bool {
        self.window.len() * ROW_BYTES + self.json_new + self.json_written >= self.window_bytes
    }

    /// Step 1: inserts the versions published so far and the models not yet in the table,
    /// which the window keeps without their editor JSON.
    async fn insert_new(&mut self, pool: &PgPool) -> Result<(), RebuildError> {
        let new: Vec<Uuid> = self
            .dirty
            .iter()
            .filter(|id| !self.written.contains(id))
            .copied()
            .collect();
        let mut rows = Vec::with_capacity(new.len());
        for id in &new {
            if let Some(row) = self.window.row_mut(id) {
                // The window's row keeps `None` from here on: the JSON as stored.
                let json = row.model_json.take();
                let mut image = row.clone();
                image.model_json = json;
                rows.push(image);
            }
        }
        let versions = self.window.take_versions();
        // Versions first: one without its JSON copies its model's as stored now, before
        // a rewrite of the row (step 2) replaces it.
        self.write(pool, rows, versions).await?;
        for id in new {
            self.written.insert(id);
            self.dirty.remove(&id);
        }
        self.json_new = 0;
        Ok(())
    }

    /// Step 2: rewrites the rows changed since their last write and starts an empty window.
    /// Call [`Self::insert_new`] first: every row of the window is in the table then.
    async fn rewrite_window(&mut self, pool: &PgPool) -> Result<(), RebuildError> {
        let window = std::mem::replace(&mut self.window, Batch::new(Rows::new()));
        self.json_written = 0;
        let dirty = std::mem::take(&mut self.dirty);
        let fold::Folded { rows, versions } = window.finish();
        debug_assert!(versions.is_empty(), "insert_new wrote the versions");
        let changed = rows
            .into_iter()
            .filter(|row| dirty.contains(&row.id))
            .collect();
        self.write(pool, changed, Vec::new()).await
    }

    /// Writes `rows` (inserted or updated as [`Self::written`] says) in parts on
    /// [`FILL_WRITERS`] connections, after `versions`.
    async fn write(
        &self,
        pool: &PgPool,
        rows: Vec<ModelRow>,
        versions: Vec<VersionRow>,
    ) -> Result<(), RebuildError> {
        if !versions.is_empty() {
            let mut tx = begin_step(pool).await?;
            let mut write = store::BatchWrite::new();
            store::insert_versions(&mut write, &self.tables, self.generation, versions);
            write.execute(&mut tx).await?;
            tx.commit().await?;
        }
        let (tables, generation, written) = (&self.tables, self.generation, &self.written);
        futures::stream::iter(in_parts(rows, ROWS_PER_WRITE))
            .map(|rows| async move {
                let mut tx = begin_step(pool).await?;
                let mut write = store::BatchWrite::new();
                store::write_models(&mut write, tables, generation, rows, |id| {
                    written.contains(id)
                });
                write.execute(&mut tx).await?;
                tx.commit().await?;
                Ok::<(), RebuildError>(())
            })
            .buffer_unordered(FILL_WRITERS as usize)
            .try_collect::<()>()
            .await
    }
}

/// What `event` makes the window hold beyond its row, estimated.
fn json_bytes(event: &StoredEvent) -> usize {
    match event.event_type.as_str() {
        // A row holds the text itself (`JsonText`), plus the allocator's rounding up.
        "ModelCreated" | "ModelJsonReplaced" => event.payload.as_text().len() * 5 / 4,
        "ModelPublished" | "ModelRestored" => COPIED_JSON_BYTES,
        _ => 0,
    }
}

#[async_trait]
impl Fill for ModelsFill {
    async fn push(&mut self, pool: &PgPool, batch: Vec<StoredEvent>) -> Result<(), RebuildError> {
        let mut events = Vec::with_capacity(batch.len());
        for event in &batch {
            if event.aggregate_type != fold::AGGREGATE_TYPE {
                continue;
            }
            let id = Uuid::parse_str(&event.aggregate_id)
                .map_err(|e| ProjectionError::failed(event.global_position, e))?;
            events.push((id, event));
        }
        let mut to_load: Vec<Uuid> = events
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| self.written.contains(id) && !self.window.holds(id))
            .collect();
        to_load.sort_unstable();
        to_load.dedup();
        let mut conn = pool.acquire().await?;
        if !to_load.is_empty() {
            let (_, rows) = store::load_models(&mut conn, &self.tables, &to_load, false).await?;
            self.window.add_loaded(rows);
        }
        let mut versions = PgVersions {
            conn: &mut conn,
            tables: &self.tables,
            generation: self.generation,
        };
        for (id, event) in events {
            self.window.apply(&mut versions, event).await?;
            self.dirty.insert(id);
            if self.written.contains(&id) {
                self.json_written += json_bytes(event);
            } else {
                self.json_new += json_bytes(event);
            }
        }
        drop(conn);
        if self.over_budget() {
            self.insert_new(pool).await?;
        }
        if self.over_budget() {
            self.rewrite_window(pool).await?;
            // Later batches load rows by primary key. With the statistics taken when the
            // table was empty the planner scans it instead (180 ms instead of 18 ms per
            // batch at 250 000 models); analyzing each time the table has doubled keeps the
            // `ANALYZE`s (≈ 0.25 s each at 250 000 models) to a handful.
            if self.written.len() >= 2 * self.analyzed_at {
                let mut conn = pool.acquire().await?;
                generation::analyze(&mut conn, store::MODELS_TABLE, Some(self.generation)).await?;
                self.analyzed_at = self.written.len();
            }
        }
        Ok(())
    }

    async fn finish(&mut self, pool: &PgPool) -> Result<(), RebuildError> {
        self.insert_new(pool).await?;
        self.rewrite_window(pool).await
    }
}
