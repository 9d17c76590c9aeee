//! The in-process event bus: a tenant's backlog after `Last-Event-ID`, then live, with no
//! gap and no duplicate; only new events without it; unknown ids and slow subscribers.

#[path = "sqlite_support.rs"]
mod support;

use std::time::Duration;

use futures::StreamExt as _;
use projections::relay::{ResumeError, ResumeEvents};
use projections::sqlite::SqliteConfig;
use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(10);

async fn next_position(stream: &mut ResumeEvents) -> i64 {
    let item = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("an event arrives")
        .expect("the stream goes on");
    item.expect("an event, not an error").global_position
}

/// Nothing more arrives for a moment (the bus is in-process: a short wait suffices).
async fn assert_quiet(stream: &mut ResumeEvents) {
    let more = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(more.is_err(), "unexpected item: {more:?}");
}

async fn acme_positions_after(file: &TestFile, after: i64) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT global_position FROM events WHERE global_position > ? AND \
         COALESCE(CASE WHEN aggregate_type = 'CommandRejection' \
                       THEN json_extract(payload, '$.tenantId') END, \
                  json_extract(metadata, '$.tenant_id')) = 'acme' ORDER BY global_position",
    )
    .bind(after)
    .fetch_all(&file.pool)
    .await
    .expect("acme's events")
}

fn rename(name: &str) -> [(&'static str, serde_json::Value); 1] {
    [(
        "MetadataChanged",
        json!({"name": name, "category": null, "description": null}),
    )]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_then_live_without_gap_or_duplicate() {
    let file = TestFile::create().await;
    let last = scenario(&file.pool).await;
    let projections = file.projections(3).await;
    let running = start(&projections);
    assert!(projections.wait_for(last, WAIT).await);
    running.stop().await;
    // Stored but not yet applied or published when the client resumes: the backlog has it,
    // and the live copy published later must be dropped.
    let pending = command(
        &file.pool,
        &ALICE,
        "UpdateModel",
        M1,
        9,
        &rename("a"),
        at(12),
    )
    .await;
    let mut stream = projections
        .subscribe("acme", Some(2))
        .await
        .expect("subscribe");
    let expected_backlog = acme_positions_after(&file, 2).await;
    assert_eq!(expected_backlog.last(), Some(&pending[0]));
    let mut received = Vec::new();
    for _ in 0..expected_backlog.len() {
        received.push(next_position(&mut stream).await);
    }
    assert_eq!(received, expected_backlog);

    let running = start(&projections);
    projections.notify();
    let live = command(
        &file.pool,
        &BOB,
        "UpdateModel",
        M1,
        10,
        &rename("b"),
        at(13),
    )
    .await;
    command(
        &file.pool,
        &CAROL,
        "UpdateModel",
        M2,
        3,
        &rename("c"),
        at(14),
    )
    .await;
    let rejected = reject(
        &file.pool,
        &BOB,
        "ArchiveModel",
        Some(M1),
        "forbidden",
        at(15),
    )
    .await;
    projections.notify();
    assert_eq!(next_position(&mut stream).await, live[0]);
    assert_eq!(
        next_position(&mut stream).await,
        rejected,
        "the rejection's tenant counts"
    );
    assert_quiet(&mut stream).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_last_event_id_only_new_events_of_the_tenant() {
    let file = TestFile::create().await;
    let last = scenario(&file.pool).await;
    let projections = file.projections(100).await;
    let running = start(&projections);
    assert!(projections.wait_for(last, WAIT).await);
    let mut acme = projections
        .subscribe("acme", None)
        .await
        .expect("subscribe");
    let mut globex = projections
        .subscribe("globex", None)
        .await
        .expect("subscribe");
    let a = command(
        &file.pool,
        &ALICE,
        "UpdateModel",
        M1,
        9,
        &rename("a"),
        at(12),
    )
    .await;
    let g = command(
        &file.pool,
        &CAROL,
        "UpdateModel",
        M2,
        3,
        &rename("g"),
        at(13),
    )
    .await;
    projections.notify();
    assert_eq!(next_position(&mut acme).await, a[0]);
    assert_eq!(next_position(&mut globex).await, g[0]);
    assert_quiet(&mut acme).await;
    assert_quiet(&mut globex).await;
    running.stop().await;
}

#[tokio::test]
async fn an_unknown_last_event_id_fails_before_the_first_item() {
    let file = TestFile::create().await;
    let last = scenario(&file.pool).await;
    let projections = file.projections(100).await;
    let unknown = last + 100;
    assert!(matches!(
        projections.subscribe("acme", Some(unknown)).await,
        Err(ResumeError::UnknownLastEventId(id)) if id == unknown
    ));
    // The last event itself is known: an empty backlog, then live.
    let mut stream = projections
        .subscribe("acme", Some(last))
        .await
        .expect("subscribe");
    assert_quiet(&mut stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_behind_the_bus_capacity_gets_a_final_error() {
    let file = TestFile::create().await;
    let config = SqliteConfig {
        bus_capacity: 2,
        poll_interval: Duration::from_millis(50),
        ..SqliteConfig::default()
    };
    let projections = projections::sqlite::SqliteProjections::new(file.pool.clone(), config)
        .await
        .expect("read side");
    let mut slow = projections
        .subscribe("acme", None)
        .await
        .expect("subscribe");
    let running = start(&projections);
    let last = scenario(&file.pool).await;
    projections.notify();
    assert!(projections.wait_for(last, WAIT).await);
    let item = tokio::time::timeout(WAIT, slow.next())
        .await
        .expect("an item")
        .expect("not the end");
    assert!(
        matches!(item, Err(ResumeError::SlowConsumer { limit: 2, .. })),
        "{item:?}"
    );
    let end = tokio::time::timeout(WAIT, slow.next()).await.expect("ends");
    assert!(end.is_none(), "the error is the last item");
    running.stop().await;
}
