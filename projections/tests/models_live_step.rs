//! The models projector's live step reads outside a transaction and then writes the batch
//! and moves the checkpoint in one statement. Whatever commits between the two and writes
//! the checkpoint row must make the write fail and write nothing: a rebuild's swap (even
//! one that leaves the position where it was) or an overlapping runner.

mod common;
#[path = "common/audit_fixtures.rs"]
mod fixtures;

use std::time::Duration;

use common::{eventually, TestDb};
use fixtures::scenario;
use projections::models::{ModelsProjector, FAMILY};
use projections::{checkpoint, feed, LiveOutcome, Position, Projector, StoredEvent};
use sqlx::PgPool;

const LIMIT: Duration = Duration::from_secs(10);

/// The scenario's events, what the live projector reads with them (`also`), and a
/// checkpoint row at the start.
async fn events_and_checkpoint(pool: &PgPool) -> (Vec<StoredEvent>, String, Position) {
    let last = scenario(pool).await;
    let mut tx = pool.begin().await.expect("begin");
    let from = checkpoint::load_for_update(&mut tx, FAMILY)
        .await
        .expect("checkpoint");
    tx.commit().await.expect("commit");
    assert_eq!(from, Position::START);
    // Committed events can be held back a moment by the feed's gate (an open transaction
    // of another test in the cluster): read until the last is there.
    let also = ModelsProjector::live().read_also().map(str::to_owned);
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let batch = feed::read_next_also(pool, Position::START, 1_000, i64::MAX, also.as_deref())
            .await
            .expect("read");
        if batch.events.last().map(|e| e.global_position) == Some(last) {
            let to = batch.events.last().expect("events").position();
            return (batch.events, batch.also.expect("read with the batch"), to);
        }
        assert!(tokio::time::Instant::now() < deadline, "the feed stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn step(to: Position) -> checkpoint::Move<'static> {
    checkpoint::Move {
        name: FAMILY,
        from: Position::START,
        to,
    }
}

async fn live_step(
    steps: &PgPool,
    to: Position,
    events: &[StoredEvent],
    read: Option<&str>,
) -> LiveOutcome {
    ModelsProjector::live()
        .apply_live(steps, step(to), events, read)
        .await
        .expect("the live projector has a live step")
        .expect("the step runs")
}

/// Rows of every generation: models, versions, counts.
async fn rows(pool: &PgPool) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM process_models), (SELECT count(*) FROM model_versions),
                (SELECT count(*) FROM process_model_counts)",
    )
    .fetch_one(pool)
    .await
    .expect("count rows")
}

async fn stored_checkpoint(pool: &PgPool) -> Position {
    checkpoint::load(pool, FAMILY)
        .await
        .expect("load")
        .expect("the row exists")
        .position
}

#[tokio::test]
async fn a_step_writes_its_batch_and_moves_the_checkpoint() {
    for with_read in [true, false] {
        let db = TestDb::create().await;
        let (events, also, to) = events_and_checkpoint(&db.pool).await;
        let read = Some(also.as_str()).filter(|_| with_read);
        let steps = pg_support::projector_step_pool(&db.pool, 1);
        assert_eq!(
            live_step(&steps, to, &events, read).await,
            LiveOutcome::Applied
        );
        assert_eq!(stored_checkpoint(&db.pool).await, to);
        let (models, versions, counts) = rows(&db.pool).await;
        assert_eq!(
            (models, versions),
            (2, 1),
            "read with the batch: {with_read}"
        );
        assert!(counts > 0);

        // The same step again, as an overlapping runner would: the checkpoint has moved.
        assert_eq!(
            live_step(&steps, to, &events, read).await,
            LiveOutcome::Moved(to)
        );
        assert_eq!(rows(&db.pool).await, (models, versions, counts));

        // Its connection commits without waiting for the WAL flush (ADR 0005), and only its.
        let show = "SHOW synchronous_commit";
        let step_setting: String = sqlx::query_scalar(show)
            .fetch_one(&steps)
            .await
            .expect("show");
        assert_eq!(step_setting, "off");
        let pool_setting: String = sqlx::query_scalar(show)
            .fetch_one(&db.pool)
            .await
            .expect("show");
        assert_eq!(pool_setting, "on");
    }
}

/// A swap that commits after the step's read and rewrites the checkpoint row at the same
/// position (its catch-up held back by an older transaction): a compare-and-set on the
/// position alone would succeed and write the batch into the retired generation. Both with
/// the read that came with the batch and with the step's own load.
#[tokio::test]
async fn a_swap_between_the_read_and_the_write_makes_the_step_write_nothing() {
    for with_read in [true, false] {
        let db = TestDb::create().await;
        let (events, also, to) = events_and_checkpoint(&db.pool).await;
        let steps = pg_support::projector_step_pool(&db.pool, 1);

        // The swap locks the live checkpoint row first, as `rebuild` does.
        let mut swap = db.pool.begin().await.expect("begin the swap");
        let live = checkpoint::load_for_update(&mut swap, FAMILY)
            .await
            .expect("lock the live checkpoint");
        assert_eq!(live, Position::START);

        // The step reads (a plain read, not blocked by the row lock) and then waits in its
        // write for the row.
        let pool = steps.clone();
        let batch = events.clone();
        let step_task = tokio::spawn(async move {
            let read = Some(also.as_str()).filter(|_| with_read);
            live_step(&pool, to, &batch, read).await
        });
        eventually(
            "the step's write waits for the checkpoint row",
            LIMIT,
            || {
                let pool = db.pool.clone();
                async move {
                    let waiting: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM pg_stat_activity
                      WHERE datname = current_database() AND wait_event_type = 'Lock'
                        AND query LIKE '%UPDATE projection_checkpoints%'",
                    )
                    .fetch_one(&pool)
                    .await
                    .expect("pg_stat_activity");
                    waiting == 1
                }
            },
        )
        .await;

        // The swap makes the next generation active and rewrites the checkpoint where it was.
        sqlx::query("UPDATE projection_generations SET active = active + 1 WHERE name = $1")
            .bind(FAMILY)
            .execute(&mut *swap)
            .await
            .expect("activate the next generation");
        checkpoint::save(&mut swap, FAMILY, live)
            .await
            .expect("save the live checkpoint");
        swap.commit().await.expect("commit the swap");

        let outcome = step_task.await.expect("the step task");
        assert_eq!(outcome, LiveOutcome::Moved(Position::START));
        assert_eq!(
            rows(&db.pool).await,
            (0, 0, 0),
            "nothing written to the retired generation (read with the batch: {with_read})"
        );
        assert_eq!(stored_checkpoint(&db.pool).await, Position::START);
    }
}
