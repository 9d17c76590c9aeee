//! Rebuilds on SQLite: one write transaction, so a reader keeps seeing the old content until
//! it commits; progress per batch; one rebuild at a time; the live loop carries on after.

#[path = "sqlite_support.rs"]
mod support;

use std::sync::mpsc;
use std::time::Duration;

use projections::audit::{AuditFilter, Page};
use projections::models::query::{ListPage, ModelFilter, SortColumn};
use projections::rebuild::{Progress, RebuildError};
use projections::sqlite::{audit, models, Family};
use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(10);

fn first_page() -> ListPage {
    ListPage {
        sort: SortColumn::Name,
        descending: false,
        start: 0,
        size: 10,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_the_old_content_until_the_rebuild_commits() {
    let file = TestFile::create().await;
    let last = scenario(&file.pool).await;
    let projections = file.projections(4).await;
    let running = start(&projections);
    assert!(projections.wait_for(last, WAIT).await);
    running.stop().await;
    let before = models::list(&file.pool, "acme", &ModelFilter::default(), first_page())
        .await
        .expect("list")
        .1;
    assert_eq!(before, 1);
    // Make the live content differ from what a rebuild produces, to tell them apart.
    sqlx::query("UPDATE process_models SET name = 'stale', name_lower = 'stale'")
        .execute(&file.pool)
        .await
        .expect("mark the old content");

    // The rebuild pauses after its first batch until the reader has looked.
    let (reached, pause) = mpsc::channel::<Progress>();
    let (resume, resumed) = mpsc::channel::<()>();
    let rebuild = {
        let projections = projections.clone();
        tokio::spawn(async move {
            projections
                .rebuild(Family::Models, move |p| {
                    let _ = reached.send(p);
                    if p.done == 4 {
                        let _ = resumed.recv_timeout(WAIT);
                    }
                })
                .await
        })
    };
    let (pause, seen) = tokio::task::spawn_blocking(move || {
        let seen: Vec<Progress> = (0..2)
            .filter_map(|_| pause.recv_timeout(WAIT).ok())
            .collect();
        (pause, seen)
    })
    .await
    .expect("join");
    assert_eq!(
        seen,
        [
            Progress { done: 0, total: 13 },
            Progress { done: 4, total: 13 }
        ]
    );
    let (rows, _) = models::list(&file.pool, "acme", &ModelFilter::default(), first_page())
        .await
        .expect("a reader is not blocked by the rebuild");
    assert_eq!(
        rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["stale"]
    );
    // A second rebuild is refused while this one runs.
    assert!(matches!(
        projections.rebuild(Family::Models, |_| {}).await,
        Err(RebuildError::AlreadyRunning("process_models"))
    ));
    resume.send(()).expect("resume the rebuild");
    let report = rebuild.await.expect("join").expect("rebuild");
    assert_eq!((report.family, report.events), ("process_models", 13));
    let rest: Vec<u64> = pause.try_iter().map(|p| p.done).collect();
    assert_eq!(rest, [8, 12, 13], "one report per batch of 4");
    let (rows, _) = models::list(&file.pool, "acme", &ModelFilter::default(), first_page())
        .await
        .expect("list");
    assert_eq!(
        rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["Order handling"]
    );

    // The loop carries on from the rebuilt checkpoint.
    let running = start(&projections);
    let more = [(
        "MetadataChanged",
        json!({"name": "Renamed", "category": null, "description": null}),
    )];
    let next = command(&file.pool, &ALICE, "UpdateModel", M1, 9, &more, at(12)).await;
    projections.notify();
    assert!(projections.wait_for(next[0], WAIT).await);
    let (rows, _) = models::list(&file.pool, "acme", &ModelFilter::default(), first_page())
        .await
        .expect("list");
    assert_eq!(rows[0].name, "Renamed");
    let (audit_rows, total) = audit::list(
        &file.pool,
        "acme",
        &AuditFilter::default(),
        &Page::default(),
    )
    .await
    .expect("audit");
    assert_eq!((total, audit_rows[0].action.as_str()), (9, "UpdateModel"));
    running.stop().await;
}

#[tokio::test]
async fn rebuilding_an_empty_store_leaves_empty_tables() {
    let file = TestFile::create().await;
    let projections = file.projections(10).await;
    for family in [Family::Models, Family::Audit] {
        let report = projections.rebuild(family, |_| {}).await.expect("rebuild");
        assert_eq!(report.events, 0);
    }
    let status = projections.status().await.expect("status");
    assert!(status
        .iter()
        .all(|c| c.checkpoint.global_position == 0 && c.lag == 0));
    assert!(audit::verify(&file.pool).await.expect("verify").is_intact());
}
