//! The SQLite projector loop: what it builds equals a rebuild from scratch, the audit rows
//! and hashes are the shared chain's, a failing batch is retried (never skipped), and
//! read-your-writes waits resolve or time out.

#[path = "sqlite_support.rs"]
mod support;

use std::time::Duration;

use projections::audit::{hash, AuditResult};
use projections::runner::RunnerState;
use projections::sqlite::{Family, AUDIT, MODELS};
use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_projection_equals_a_rebuild_and_the_chain_is_the_shared_one() {
    let file = TestFile::create().await;
    // Batches of 2 split the three-event command across batches: rows must not change.
    let projections = file.projections(2).await;
    let running = start(&projections);
    let last = scenario(&file.pool).await;
    projections.notify();
    assert!(
        projections.wait_for(last, WAIT).await,
        "the models caught up"
    );
    let live_models = format!("{:?}", all_models(&file.pool).await);
    // The audit consumer commits in the same transaction as the models one.
    let live_audit = audit_rows(&file.pool).await;
    running.stop().await;

    // One row per command (the three-event edit is one row) and per rejection.
    let summary: Vec<_> = live_audit
        .iter()
        .map(|r| {
            (
                r.seq,
                r.user_id.clone().unwrap_or_default(),
                r.action.clone(),
                r.result,
            )
        })
        .collect();
    let expected = [
        ("alice", "CreateModel", AuditResult::Success),
        ("alice", "UpdateModel", AuditResult::Success),
        ("alice", "PublishModel", AuditResult::Success),
        ("bob", "UpdateModelJson", AuditResult::Success),
        ("bob", "PublishModel", AuditResult::Failure),
        ("carol", "CreateModel", AuditResult::Success),
        ("alice", "ArchiveModel", AuditResult::Success),
        ("carol", "PublishModel", AuditResult::Failure),
        ("alice", "RestoreModel", AuditResult::Success),
        ("carol", "UpdateModel", AuditResult::Success),
        ("bob", "ArchiveModel", AuditResult::Failure),
    ];
    let expected: Vec<_> = (1i64..)
        .zip(expected)
        .map(|(seq, (user, action, result))| (seq, user.to_owned(), action.to_owned(), result))
        .collect();
    assert_eq!(summary, expected);
    assert_eq!(
        live_audit[3].details,
        json!({"events": ["DraftVersionOpened", "MetadataChanged", "ModelJsonReplaced"],
               "fromSequence": 4, "toSequence": 6, "version": 2})
    );
    assert_eq!(
        live_audit[3].tx_id, live_audit[3].id,
        "a commit's id is its first event"
    );
    assert_eq!(live_audit[0].prev_hash, hash::GENESIS);
    for pair in live_audit.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    for row in &live_audit {
        assert_eq!(row.hash, hash::compute(row), "seq {}", row.seq);
    }

    // The restored model has version 1's content again.
    let m1 = all_models(&file.pool)
        .await
        .into_iter()
        .find(|m| m.id.to_string() == M1)
        .expect("m1");
    assert_eq!((m1.version, m1.status.as_str()), (3, "DRAFT"));
    assert_eq!(
        m1.model_json.as_ref().map(projections::models::json_value),
        Some(json!({"childShapes": []}))
    );
    assert_eq!(m1.name, "Order handling");

    for family in [Family::Models, Family::Audit] {
        let report = projections.rebuild(family, |_| {}).await.expect("rebuild");
        assert_eq!(report.events, 13);
    }
    assert_eq!(format!("{:?}", all_models(&file.pool).await), live_models);
    assert_eq!(audit_rows(&file.pool).await, live_audit);
    assert!(projections::sqlite::audit::verify(&file.pool)
        .await
        .expect("verify")
        .is_intact());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_batch_is_retried_and_never_skipped() {
    let file = TestFile::create().await;
    let projections = file.projections(100).await;
    let running = start(&projections);
    let m1 = created("orderProcess", "Order process", "acme", None);
    let first = command(
        &file.pool,
        &ALICE,
        "CreateModel",
        M1,
        1,
        &[("ModelCreated", m1)],
        at(1),
    )
    .await;
    assert!(projections.wait_for(first[0], WAIT).await);

    sqlx::query(
        "CREATE TRIGGER broken BEFORE INSERT ON audit_logs \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
    )
    .execute(&file.pool)
    .await
    .expect("break the audit table");
    let m2 = created("invoice", "Invoice", "globex", None);
    let second = command(
        &file.pool,
        &CAROL,
        "CreateModel",
        M2,
        1,
        &[("ModelCreated", m2)],
        at(2),
    )
    .await;
    projections.notify();
    assert!(
        !projections
            .wait_for(second[0], Duration::from_millis(600))
            .await
    );
    let status = projections.status().await.expect("status");
    for consumer in &status {
        assert_eq!(consumer.state, RunnerState::Failing, "{}", consumer.name);
        assert_eq!(
            consumer.checkpoint.global_position, first[0],
            "{}",
            consumer.name
        );
        assert_eq!(consumer.lag, 1);
        let error = consumer.last_error.as_deref().unwrap_or_default();
        assert!(error.contains("injected failure"), "{error}");
    }
    assert_eq!(projections.lag().await.expect("lag"), 1);

    sqlx::query("DROP TRIGGER broken")
        .execute(&file.pool)
        .await
        .expect("repair");
    assert!(
        projections.wait_for(second[0], WAIT).await,
        "retried after the repair"
    );
    let status = projections.status().await.expect("status");
    assert_eq!(
        status
            .iter()
            .map(|c| (c.name, c.checkpoint.global_position, c.lag, c.state))
            .collect::<Vec<_>>(),
        vec![
            (MODELS, second[0], 0, RunnerState::Running),
            (AUDIT, second[0], 0, RunnerState::Running)
        ]
    );
    assert_eq!(audit_rows(&file.pool).await.len(), 2);
    running.stop().await;
    let status = projections.status().await.expect("status");
    assert!(status.iter().all(|c| c.state == RunnerState::Idle));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_resolves_when_applied_and_times_out_otherwise() {
    let file = TestFile::create().await;
    let projections = file.projections(100).await;
    let m1 = created("orderProcess", "Order process", "acme", None);
    let positions = command(
        &file.pool,
        &ALICE,
        "CreateModel",
        M1,
        1,
        &[("ModelCreated", m1)],
        at(1),
    )
    .await;
    // Not running: the wait times out.
    assert!(
        !projections
            .wait_for(positions[0], Duration::from_millis(100))
            .await
    );
    let waiter = {
        let projections = projections.clone();
        tokio::spawn(async move { projections.wait_for(positions[0], WAIT).await })
    };
    let running = start(&projections);
    assert!(waiter.await.expect("join"), "resolves once applied");
    let m1 = uuid::Uuid::parse_str(M1).expect("uuid");
    let row = projections::sqlite::models::get(&file.pool, "acme", m1)
        .await
        .expect("get");
    assert!(row.is_some(), "read-your-writes: visible after the wait");
    running.stop().await;
}
