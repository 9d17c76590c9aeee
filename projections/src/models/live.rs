//! The live projector's step without a transaction (ADR 0011): what a batch needs from the
//! read tables comes with the batch's feed read (or, for a batch read ahead, from a load of
//! its own), and one statement writes the batch and moves the checkpoint.

use std::sync::LazyLock;

use serde::Deserialize;
use sqlx::PgPool;

use super::fold::AGGREGATE_TYPE;
use super::store::{self, Loaded, ModelRow};
use super::{ModelsProjector, FAMILY};
use crate::checkpoint::{self, Move, Seen};
use crate::error::ProjectionError;
use crate::event::{parse_tx_id, StoredEvent};
use crate::position::Position;
use crate::runner::LiveOutcome;

/// The expression the live runner evaluates with each batch it reads
/// ([`crate::Projector::read_also`]): the active generation, the live checkpoint row with
/// its version, and the stored rows of the batch's models (without their editor JSON, as
/// [`store::load_for_live_step`] reads them), as one JSON object. An aggregate id that is
/// not a UUID loads nothing (the fold then fails on that event, as with a load).
pub(super) static READ_ALSO: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT json_build_object(
             'generation', g.active,
             'checkpoint', (SELECT json_build_object(
                     'row_version', cp.xmin::text, 'tx_id', cp.tx_id::text,
                     'global_position', cp.global_position)
                 FROM projection_checkpoints cp WHERE cp.name = '{FAMILY}'),
             'rows', (SELECT json_agg(r) FROM (
                 SELECT m.id, m.tenant_id, m.process_key, m.name, m.category, m.description,
                        m.version, m.status, m.created_by, m.created_time, m.updated_by,
                        m.updated_time, m.revision
                   FROM process_models m
                  WHERE m.generation = g.active
                    AND m.id IN (
                        SELECT CASE WHEN l.aggregate_id ~ '{UUID_PATTERN}'
                                    THEN l.aggregate_id::uuid END
                          FROM limited l
                         WHERE l.bytes_before < $4 AND l.aggregate_type = '{AGGREGATE_TYPE}')
             ) r))::text
           FROM projection_generations g WHERE g.name = '{FAMILY}'"
    )
});

/// What PostgreSQL's `uuid` input takes without an error, in its common form.
const UUID_PATTERN: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// [`READ_ALSO`]'s value.
#[derive(Deserialize)]
struct ReadWithBatch {
    generation: i64,
    checkpoint: Option<CheckpointRow>,
    /// `null` when no stored row matched.
    rows: Option<Vec<ModelRow>>,
}

#[derive(Deserialize)]
struct CheckpointRow {
    row_version: String,
    tx_id: String,
    global_position: i64,
}

impl ReadWithBatch {
    fn decode(text: &str) -> Result<Loaded, ProjectionError> {
        let read: Self = serde_json::from_str(text).map_err(|error| {
            ProjectionError::Database(sqlx::Error::Decode(
                format!("the models' read with the batch: {error}").into(),
            ))
        })?;
        let checkpoint = match read.checkpoint {
            Some(row) => Some(Seen {
                position: Position::new(parse_tx_id(&row.tx_id)?, row.global_position),
                row_version: row.row_version,
            }),
            None => None,
        };
        Ok(Loaded {
            generation: read.generation,
            rows: read.rows.unwrap_or_default(),
            checkpoint,
        })
    }
}

impl ModelsProjector {
    /// The live step ([`crate::Projector::apply_live`]): with the generation, the rows and
    /// the checkpoint row read on one snapshot (`read`, with the batch; else loaded here),
    /// one statement writes the rows, versions and counts and moves the checkpoint. Where
    /// a transaction took five round trips after the feed read (`BEGIN`, compare-and-set,
    /// load, write, `COMMIT`), this takes one.
    ///
    /// Between the read and the write a rebuild's swap may commit (a new active generation,
    /// the live checkpoint rewritten, possibly at the same position when its catch-up was
    /// held back) or an overlapping runner may move the checkpoint. Either writes the
    /// checkpoint row, so the write's compare-and-set on the row's version fails and it
    /// writes nothing: the batch never goes to a retired generation nor is applied twice.
    /// The write waits for a swap that holds the row and then compares against its
    /// committed version.
    pub(super) async fn live_step(
        &self,
        pool: &PgPool,
        step: Move<'_>,
        events: &[StoredEvent],
        read: Option<&str>,
    ) -> Result<LiveOutcome, ProjectionError> {
        let (events, ids) = self.begin_batch(events)?;
        let mut conn = pool.acquire().await?;
        let loaded = match read {
            Some(text) => ReadWithBatch::decode(text)?,
            None => store::load_for_live_step(&mut conn, &self.tables, &ids, step.name).await?,
        };
        let Some(seen) = loaded.checkpoint else {
            return Ok(LiveOutcome::Moved(Position::START));
        };
        if seen.position != step.from {
            return Ok(LiveOutcome::Moved(seen.position));
        }
        let mut write = store::BatchWrite::moving_checkpoint(step, &seen);
        if !events.is_empty() {
            self.fold_into(
                &mut conn,
                loaded.generation,
                loaded.rows,
                events,
                &mut write,
            )
            .await?;
        }
        if write.execute_moving(&mut conn).await? {
            return Ok(LiveOutcome::Applied);
        }
        Ok(LiveOutcome::Moved(
            checkpoint::position(&mut *conn, step.name).await?,
        ))
    }
}
