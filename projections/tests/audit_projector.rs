//! The audit log projector against real PostgreSQL: one row per accepted command and per
//! rejection, with who/what/where/when from the event metadata; rows and hashes identical
//! whatever the batch size and in every generation; a rebuild swapped in by
//! `rebuild::rebuild` keeps the chain, and the live projector continues it.

mod common;
#[path = "common/audit_fixtures.rs"]
mod fixtures;

use std::sync::Arc;
use std::time::Duration;

use common::TestDb;
use fixtures::{command, new_generation, project, reset_checkpoint, rows, scenario, ALICE, M1, M2};
use projections::audit::{
    self, AuditProjector, AuditRebuild, AuditResult, AuditRow, NAME, REBUILD_NAME,
};
use projections::generation::Target;
use projections::{rebuild, Projector, ProjectorRunner, RunnerConfig};
use serde_json::json;
use tokio::sync::watch;

const LIMIT: Duration = Duration::from_secs(20);

/// Runs the live projector through the real runner (batches of `batch`) until it has
/// processed the event at `last`, then stops it.
async fn run_live(db: &TestDb, batch: i64, last: i64) {
    let config = RunnerConfig {
        batch_size: batch,
        poll_interval: Duration::from_millis(50),
        ..RunnerConfig::default()
    };
    let runner = ProjectorRunner::new(db.pool.clone(), Arc::new(AuditProjector::live()), config);
    let handle = runner.handle();
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(runner.run(async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    }));
    assert!(
        handle.wait_for_event(last, LIMIT).await.expect("wait"),
        "the live projector catches up"
    );
    stop.send(true).expect("runner listens");
    task.await.expect("runner task");
}

/// Rows without their generation (which is not part of them): what must be identical.
fn summary(rows: &[AuditRow]) -> Vec<(i64, &str, Option<&str>, AuditResult)> {
    rows.iter()
        .map(|row| {
            (
                row.seq,
                row.action.as_str(),
                row.user_id.as_deref(),
                row.result,
            )
        })
        .collect()
}

#[tokio::test]
async fn one_row_per_command_with_who_what_where_and_when() {
    let db = TestDb::create().await;
    let last = scenario(&db.pool).await;
    project(&db.pool, &AuditProjector::live(), 100, last).await;
    let rows = rows(&db.pool, 1).await;

    assert_eq!(
        summary(&rows),
        vec![
            (1, "CreateModel", Some("alice"), AuditResult::Success),
            (2, "UpdateModel", Some("alice"), AuditResult::Success),
            (3, "PublishModel", Some("alice"), AuditResult::Success),
            (4, "UpdateModelJson", Some("bob"), AuditResult::Success),
            (5, "PublishModel", Some("bob"), AuditResult::Failure),
            (6, "CreateModel", Some("carol"), AuditResult::Success),
            (7, "ArchiveModel", Some("alice"), AuditResult::Success),
            (8, "PublishModel", Some("carol"), AuditResult::Failure),
            (9, "RestoreModel", Some("alice"), AuditResult::Success),
            (10, "UpdateModel", Some("carol"), AuditResult::Success),
            (11, "ArchiveModel", Some("bob"), AuditResult::Failure),
        ]
    );

    let created = &rows[0];
    assert_eq!(created.resource, "ProcessModel");
    assert_eq!(created.resource_id.as_deref(), Some(M1));
    assert_eq!(created.tenant_id.as_deref(), Some("acme"));
    assert_eq!(created.ip_address.as_deref(), Some("10.0.0.1"));
    assert_eq!(created.user_agent.as_deref(), Some("Mozilla/5.0"));
    assert_eq!(created.correlation_id.as_deref(), Some("req-CreateModel-1"));
    assert_eq!(created.timestamp, fixtures::at(1));
    assert_eq!(created.id, created.global_position);
    assert_eq!(
        created.details,
        json!({"events": ["ModelCreated"], "fromSequence": 1, "toSequence": 1,
               "version": 1, "key": "orderProcess"})
    );

    // The three events of one command, one transaction: one row.
    let edit = &rows[3];
    assert_eq!(edit.user_agent, None);
    assert_eq!(
        edit.details,
        json!({"events": ["DraftVersionOpened", "MetadataChanged", "ModelJsonReplaced"],
               "fromSequence": 4, "toSequence": 6, "version": 2})
    );
    assert!(
        edit.global_position > edit.id,
        "id: first event, globalPosition: last"
    );
    assert_eq!(
        rows[2].details["comment"],
        json!("first cut"),
        "publish comment kept"
    );
    assert_eq!(rows[8].details["sourceVersion"], json!(1));

    let refused = &rows[4];
    assert_eq!(refused.resource, "ProcessModel");
    assert_eq!(refused.resource_id.as_deref(), Some(M1));
    assert_eq!(refused.tenant_id.as_deref(), Some("acme"));
    assert_eq!(
        refused.details,
        json!({"reasonCode": "invalid-model", "reason": "no start event"})
    );
    assert_eq!(rows[10].resource_id, None, "a rejection without a resource");
    assert_eq!(rows[5].resource_id.as_deref(), Some(M2));
    assert_eq!(rows[5].tenant_id.as_deref(), Some("globex"));

    // The chain: contiguous seq, each row linked to the one before, hashes that match.
    assert_eq!(rows[0].prev_hash, audit::hash::GENESIS);
    for pair in rows.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    for row in &rows {
        assert_eq!(row.hash, row.expected_hash(), "seq {}", row.seq);
    }
}

#[tokio::test]
async fn rows_and_hashes_do_not_depend_on_batching_or_generation() {
    let db = TestDb::create().await;
    scenario(&db.pool).await;
    // A second round so some commands straddle batch boundaries differently.
    let more = [
        ("DraftVersionOpened", json!({"version": 4})),
        (
            "ModelJsonReplaced",
            json!({"modelJson": {"childShapes": []}}),
        ),
    ];
    let last = *command(
        &db.pool,
        &ALICE,
        "UpdateModelJson",
        M1,
        9,
        &more,
        fixtures::at(12),
    )
    .await
    .last()
    .expect("two events");

    // Live, through the real runner, in batches of 2.
    run_live(&db, 2, last).await;
    let live = rows(&db.pool, 1).await;
    assert_eq!(live.len(), 12);

    for (generation, batch) in [(11, 1), (12, 2), (13, 3), (14, 100), (2, 5_000)] {
        reset_checkpoint(&db.pool, REBUILD_NAME).await;
        new_generation(&db.pool, generation).await;
        let rebuild = AuditProjector::rebuild(generation);
        assert_eq!(rebuild.name(), REBUILD_NAME);
        project(&db.pool, &rebuild, batch, last).await;
        assert_eq!(
            rows(&db.pool, generation).await,
            live,
            "generation {generation} built in batches of {batch}"
        );
    }
    assert_eq!(AuditProjector::live().name(), NAME);
    assert_eq!(
        AuditProjector {
            target: Target::Fixed(2)
        },
        AuditProjector::rebuild(2)
    );
}

/// The rebuild's fill holds the chain's last row back until the next batch shows whether
/// its command goes on: in batches of one event every command spans batches.
#[tokio::test]
async fn rebuilds_reproduce_the_chain_whatever_their_batch_size() {
    let db = TestDb::create().await;
    let last = scenario(&db.pool).await;
    project(&db.pool, &AuditProjector::live(), 4, last).await;
    let live = rows(&db.pool, 1).await;
    let options = db.connect_options();
    for (generation, batch) in [(2, 1), (3, 2), (4, 3), (5, 7)] {
        let report = rebuild::rebuild(&db.pool, &options, &AuditRebuild, batch, |_| {})
            .await
            .expect("rebuild");
        assert_eq!(report.generation, generation);
        assert_eq!(
            rows(&db.pool, generation).await,
            live,
            "rebuilt in batches of {batch}"
        );
    }
}

#[tokio::test]
async fn a_rebuild_reproduces_the_chain_and_the_live_projector_continues_it() {
    let db = TestDb::create().await;
    let last = scenario(&db.pool).await;
    project(&db.pool, &AuditProjector::live(), 4, last).await;
    let live = rows(&db.pool, 1).await;
    let before = audit::verify(&db.pool, None).await.expect("verify");
    assert!(before.is_intact(), "{before:?}");

    let options = db.connect_options();
    let report = rebuild::rebuild(&db.pool, &options, &AuditRebuild, 3, |_| {})
        .await
        .expect("rebuild");
    assert_eq!(report.generation, 2);
    assert_eq!(rows(&db.pool, 2).await, live, "the same rows and hashes");
    assert!(
        rows(&db.pool, 1).await.is_empty(),
        "the old generation's table is dropped"
    );
    assert_eq!(
        partitions(&db.pool).await,
        vec![(
            "audit_logs_g2".to_owned(),
            indexes(&db.pool, "audit_logs").await
        )],
        "only the new generation is left, attached, with every index of the log"
    );
    let after = audit::verify(&db.pool, None).await.expect("verify");
    assert_eq!(after.generation, 2);
    assert!(after.is_intact(), "{after:?}");
    assert_eq!(after.last_hash, before.last_hash);

    // The live projector goes on in the new generation, on the same chain.
    let positions = command(
        &db.pool,
        &ALICE,
        "PublishModel",
        M1,
        9,
        &[("ModelPublished", json!({"version": 3, "comment": null}))],
        fixtures::at(12),
    )
    .await;
    project(&db.pool, &AuditProjector::live(), 100, positions[0]).await;
    let rows = rows(&db.pool, 2).await;
    assert_eq!(rows.len(), 12);
    assert_eq!(rows[11].prev_hash, rows[10].hash);
    assert_eq!(rows[11].id, positions[0]);
    let report = audit::verify(&db.pool, None).await.expect("verify");
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.rows_checked, 12);
}

/// The audit log's partitions, each with its number of indexes.
async fn partitions(pool: &sqlx::PgPool) -> Vec<(String, i64)> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT inhrelid::regclass::text FROM pg_inherits
          WHERE inhparent = 'audit_logs'::regclass ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("partitions");
    let mut counted = Vec::new();
    for name in names {
        let count = indexes(pool, &name).await;
        counted.push((name, count));
    }
    counted
}

async fn indexes(pool: &sqlx::PgPool, table: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_index WHERE indrelid = $1::regclass")
        .bind(table)
        .fetch_one(pool)
        .await
        .expect("indexes")
}

/// A rebuild whose fill fails at its `fail_at`-th batch, as a crash mid-rebuild would stop
/// it.
struct FailingRebuild {
    fail_at: usize,
}

/// The audit log's own fill, failing at its `fail_at`-th batch.
struct FailingFill {
    inner: Box<dyn rebuild::Fill>,
    batches: usize,
    fail_at: usize,
}

#[async_trait::async_trait]
impl rebuild::Fill for FailingFill {
    async fn push(
        &mut self,
        pool: &sqlx::PgPool,
        batch: Vec<projections::StoredEvent>,
    ) -> Result<(), rebuild::RebuildError> {
        self.batches += 1;
        if self.batches == self.fail_at {
            return Err(projections::ProjectionError::failed(
                batch[0].global_position,
                "simulated crash",
            )
            .into());
        }
        self.inner.push(pool, batch).await
    }

    async fn finish(&mut self, pool: &sqlx::PgPool) -> Result<(), rebuild::RebuildError> {
        self.inner.finish(pool).await
    }
}

impl rebuild::Rebuildable for FailingRebuild {
    fn family(&self) -> &'static str {
        AuditRebuild.family()
    }

    fn live_name(&self) -> &str {
        NAME
    }

    fn projector_for(&self, generation: i64) -> Box<dyn Projector> {
        AuditRebuild.projector_for(generation)
    }

    fn tables(&self) -> &'static [&'static str] {
        AuditRebuild.tables()
    }

    fn fill_for(&self, generation: i64) -> Box<dyn rebuild::Fill> {
        Box::new(FailingFill {
            inner: AuditRebuild.fill_for(generation),
            batches: 0,
            fail_at: self.fail_at,
        })
    }
}

#[tokio::test]
async fn a_rebuild_that_dies_midway_leaves_the_old_generation_served_and_the_next_one_starts_over()
{
    let db = TestDb::create().await;
    let last = scenario(&db.pool).await;
    project(&db.pool, &AuditProjector::live(), 4, last).await;
    let live = rows(&db.pool, 1).await;
    let options = db.connect_options();

    let failed = rebuild::rebuild(
        &db.pool,
        &options,
        &FailingRebuild { fail_at: 3 },
        2,
        |_| {},
    )
    .await;
    assert!(failed.is_err(), "the rebuild stops at the failing batch");
    let active: i64 =
        sqlx::query_scalar("SELECT active FROM projection_generations WHERE name = 'audit_logs'")
            .fetch_one(&db.pool)
            .await
            .expect("active");
    assert_eq!(active, 1, "the old generation is still the one served");
    assert_eq!(rows(&db.pool, 1).await, live, "and it is untouched");
    assert!(
        !rows(&db.pool, 2).await.is_empty(),
        "the dead rebuild left part of its generation behind"
    );
    let report = audit::verify(&db.pool, None).await.expect("verify");
    assert!(report.is_intact(), "{report:?}");

    // The next rebuild clears the leftovers and reproduces the chain.
    let report = rebuild::rebuild(&db.pool, &options, &AuditRebuild, 2, |_| {})
        .await
        .expect("rebuild");
    assert_eq!(report.generation, 2);
    assert_eq!(rows(&db.pool, 2).await, live);
    assert_eq!(
        partitions(&db.pool).await,
        vec![("audit_logs_g2".to_owned(), 7)],
        "the leftovers went with the old generation"
    );
}
