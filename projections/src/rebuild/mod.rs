//! Rebuilding a read model without downtime: replay the whole feed into the next
//! generation of its tables while the live projector keeps the current one up to date and
//! queries keep reading it; then, in one transaction that holds the live projector's
//! checkpoint row, catch the new generation up to the head, make it active and hand the
//! live projector its checkpoint. The old generation is dropped afterwards.
//!
//! The new generation is a table of its own with the primary key only ([`generation`]):
//! index upkeep was most of a rebuild's cost (docs/performance.md), so the other indexes
//! are built once, when the filled table is attached before the swap.

use std::time::Instant;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool, Postgres, Transaction};

use crate::checkpoint;
use crate::error::ProjectionError;
use crate::event::StoredEvent;
use crate::feed;
use crate::generation;
use crate::position::Position;
use crate::runner::{advisory_lock_key, Projector};

mod fill;

use fill::read_ahead;
pub use fill::Fill;
pub(crate) use fill::{in_parts, FILL_WRITERS};

/// A rebuild batch also ends once its events' stored payloads reach this many bytes (see
/// [`feed::read_batch_within`]). Up to four batches are in memory at once (the one written,
/// two queued, the one read), and a decoded event carrying a 16 KB editor document takes
/// ≈ 0.8 MB (≈ 200× its compressed stored size): 5 000 of them per batch took ≈ 4 GB, now
/// ≈ 1 000 do. Small events (up to ≈ 800 bytes stored) are not cut: a budget of 1 MiB cut
/// them and slowed the `process_models` rebuild by ≈ 14 % (its fold writes each model once
/// per batch).
pub(crate) const REBUILD_BATCH_BYTES: i64 = 4 * 1024 * 1024;

/// A read model that can be rebuilt.
pub trait Rebuildable: Send + Sync {
    /// Its name in `projection_generations`.
    fn family(&self) -> &'static str;
    /// The live projector's checkpoint name.
    fn live_name(&self) -> &str;
    /// A projector writing `generation`, with a checkpoint name of its own.
    fn projector_for(&self, generation: i64) -> Box<dyn Projector>;
    /// Its partitioned tables: a rebuild creates, fills, attaches and analyzes a table of
    /// the new generation for each, and drops the old generation's.
    fn tables(&self) -> &'static [&'static str];
    /// The fill factor of the new generation's `table` while the rebuild fills it (see
    /// [`generation::create_partition`]): for a table whose rows the rebuild rewrites.
    fn fill_factor(&self, _table: &str) -> Option<u8> {
        None
    }
    /// The fill of a rebuild into `generation` (see [`Fill`]); the projector of
    /// [`Self::projector_for`] then catches the generation up in the swap.
    fn fill_for(&self, generation: i64) -> Box<dyn Fill>;
}

/// How far a rebuild has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

/// What a finished rebuild did.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuildReport {
    pub family: &'static str,
    pub generation: i64,
    pub events: u64,
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("a rebuild of {0} is already running")]
    AlreadyRunning(&'static str),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error("the rebuild's feed reader stopped: {0}")]
    Reader(tokio::task::JoinError),
    #[error("the new generation ends at {rebuilt:?}, before the live checkpoint {live:?}")]
    Behind { rebuilt: Position, live: Position },
}

impl From<sqlx::Error> for RebuildError {
    fn from(error: sqlx::Error) -> Self {
        Self::Projection(error.into())
    }
}

impl From<crate::error::FeedError> for RebuildError {
    fn from(error: crate::error::FeedError) -> Self {
        Self::Projection(error.into())
    }
}

/// Rebuilds `model` from position 0, reporting progress after every batch.
pub async fn rebuild(
    pool: &PgPool,
    connect: &PgConnectOptions,
    model: &dyn Rebuildable,
    batch_size: i64,
    mut progress: impl FnMut(Progress) + Send,
) -> Result<RebuildReport, RebuildError> {
    let started = Instant::now();
    let family = model.family();
    // One rebuild per read model at a time, across replicas; the lock dies with the
    // connection if this process does.
    let mut guard = PgConnection::connect_with(connect).await?;
    let key = advisory_lock_key(&format!("rebuild:{family}"));
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut guard)
        .await?;
    if !locked {
        return Err(RebuildError::AlreadyRunning(family));
    }

    let active = generation::active(pool, family).await?;
    let target = active + 1;
    let projector = model.projector_for(target);
    // Leftovers of an abandoned rebuild (or of a drop that could not get its lock) go, and
    // the new generation starts empty.
    let mut conn = pool.acquire().await?;
    for table in model.tables() {
        generation::drop_partitions_except(&mut conn, table, active).await?;
        generation::create_partition(&mut conn, table, target, model.fill_factor(table)).await?;
    }
    sqlx::query("DELETE FROM projection_checkpoints WHERE name = $1")
        .bind(projector.name())
        .execute(&mut *conn)
        .await?;
    drop(conn);

    // Every event committed before the rebuild started must be in the new generation, even
    // if an open transaction elsewhere still holds the feed's xmin gate shut for a moment.
    let head = last_in_feed_order(pool).await?;
    let total = u64::try_from(feed::count_after(pool, Position::START).await?).unwrap_or(0);
    progress(Progress { done: 0, total });
    // The reader fetches the next batch while the fill takes the previous one: on their own
    // connections the feed query, the fill's work and its writes overlap.
    let (batches, mut to_write) = tokio::sync::mpsc::channel::<Vec<StoredEvent>>(2);
    // A task of its own, so decoding the feed's rows runs on another thread than the
    // writer's fold (joined in one task, both took turns on one thread).
    let reader = tokio::spawn(read_ahead(connect.clone(), head, batch_size, batches));
    let reader = async {
        match reader.await {
            Ok(read) => read,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(error) => Err(RebuildError::Reader(error)),
        }
    };
    let mut filler = model.fill_for(target);
    let writer = async {
        let mut done = 0u64;
        let mut filled = None;
        while let Some(batch) = to_write.recv().await {
            let Some(last) = batch.last().map(StoredEvent::position) else {
                continue;
            };
            let events = batch.len() as u64;
            filler.push(pool, batch).await?;
            filled = Some(last);
            done += events;
            progress(Progress {
                done,
                total: total.max(done),
            });
        }
        filler.finish(pool).await?;
        // The swap's catch-up starts from here.
        if let Some(last) = filled {
            let mut tx = pool.begin().await?;
            checkpoint::save(&mut tx, projector.name(), last).await?;
            tx.commit().await?;
        }
        Ok::<u64, RebuildError>(done)
    };
    let ((), mut done) = tokio::try_join!(reader, writer)?;
    tracing::info!(
        family,
        events = done,
        seconds = started.elapsed().as_secs_f64(),
        "rebuild: filled"
    );

    // Attached, the new generation gets the other indexes, built from its rows at once. No
    // query reads it before the swap (they read the active generation), and the live
    // projector goes on writing the active one meanwhile.
    let mut conn = pool.acquire().await?;
    for table in model.tables() {
        generation::attach_partition(&mut conn, table, target).await?;
    }
    drop(conn);
    tracing::info!(
        family,
        seconds = started.elapsed().as_secs_f64(),
        "rebuild: attached, indexes built"
    );

    // The swap. Locking the live checkpoint row pauses the live projector between batches.
    let mut tx = pool.begin().await?;
    let live = checkpoint::load_for_update(&mut tx, model.live_name()).await?;
    loop {
        let applied = apply_next(&mut tx, projector.as_ref(), batch_size).await?;
        if applied == 0 {
            break;
        }
        done += applied as u64;
    }
    let rebuilt = checkpoint::position(&mut *tx, projector.name()).await?;
    if rebuilt < live {
        return Err(RebuildError::Behind { rebuilt, live });
    }
    sqlx::query("UPDATE projection_generations SET active = $2 WHERE name = $1")
        .bind(family)
        .bind(target)
        .execute(&mut *tx)
        .await?;
    checkpoint::save(&mut tx, model.live_name(), rebuilt).await?;
    sqlx::query("DELETE FROM projection_checkpoints WHERE name = $1")
        .bind(projector.name())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    progress(Progress {
        done,
        total: total.max(done),
    });

    // The swap is done whatever happens here: a table that cannot be dropped now (its
    // readers held the lock through every attempt) is dropped by the next rebuild.
    let mut conn = pool.acquire().await?;
    for table in model.tables() {
        if let Err(error) = generation::drop_partitions_except(&mut conn, table, target).await {
            tracing::warn!(table, %error, "rebuild: the retired generation's table stays until the next rebuild");
        }
    }
    drop(conn);
    // Fresh statistics for the new rows: until autovacuum gets to them the planner would
    // scan a whole tenant for a primary-key lookup (docs/performance.md, finding 1).
    // Autovacuum never analyzes a partitioned table itself, only its partitions.
    let mut conn = pool.acquire().await?;
    for table in model.tables() {
        generation::analyze(&mut conn, table, None).await?;
    }
    drop(conn);
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(key)
        .execute(&mut guard)
        .await;
    let _ = guard.close().await;
    let report = RebuildReport {
        family,
        generation: target,
        events: done,
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(
        family,
        generation = target,
        events = done,
        seconds = report.seconds,
        "rebuild finished"
    );
    Ok(report)
}

/// The feed position of the last committed event in feed order (not the highest global
/// position: identity order is not commit order).
async fn last_in_feed_order(pool: &PgPool) -> Result<Option<Position>, RebuildError> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT tx_id::text, global_position FROM events ORDER BY tx_id DESC, global_position DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(tx, gp)| tx.parse().ok().map(|tx| Position::new(tx, gp))))
}

/// Applies the next batch after the projector's checkpoint inside `tx`; the number applied.
async fn apply_next(
    tx: &mut Transaction<'_, Postgres>,
    projector: &dyn Projector,
    batch_size: i64,
) -> Result<usize, RebuildError> {
    let after = checkpoint::load_for_update(tx, projector.name()).await?;
    let batch = feed::read_batch_within(&mut **tx, after, batch_size, REBUILD_BATCH_BYTES).await?;
    let Some(last) = batch.last().map(|e| e.position()) else {
        return Ok(0);
    };
    projector.apply(tx, &batch).await?;
    checkpoint::save(tx, projector.name(), last).await?;
    Ok(batch.len())
}
