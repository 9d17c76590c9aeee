//! The PostgreSQL event log: one statement per commit (or group of commits, see
//! `pg_group_commit.rs`) that answers with its position,
//! conflicts that write nothing, and the command service's retries and state cache on top
//! of it.

mod common;

use commands::postgres::PgEventLog;
use commands::store::{AppendError, EventLog};
use commands::{CommandError, CommandService};
use common::pg::{event, rows, TestDb};
use common::{create, metadata, rename};
use domain::{ProcessModel, ProcessModelError, TenantId};
use serde_json::json;

#[tokio::test]
async fn an_append_is_one_transaction_and_answers_with_its_last_events_place() {
    let db = TestDb::create().await;
    let log = PgEventLog::new(db.pool.clone());
    let first = log
        .append(&[event("a", 1), event("a", 2), event("a", 3)])
        .await
        .expect("first commit");
    let second = log.append(&[event("b", 1)]).await.expect("second commit");
    let stored = rows(&db).await;
    assert_eq!(stored.len(), 4);
    let sequences: Vec<(&str, i64)> = stored.iter().map(|r| (r.0.as_str(), r.1)).collect();
    assert_eq!(sequences, [("a", 1), ("a", 2), ("a", 3), ("b", 1)]);
    // One commit, one transaction id; the answer is the commit's last event.
    assert!(stored[..3].iter().all(|r| r.2 == stored[0].2));
    assert_ne!(stored[3].2, stored[0].2);
    assert_eq!(
        (first.tx_id, first.global_position),
        (stored[2].2, stored[2].3)
    );
    assert_eq!(
        (second.tx_id, second.global_position),
        (stored[3].2, stored[3].3)
    );
    // Payload and metadata are stored as given.
    let (payload, metadata): (serde_json::Value, serde_json::Value) = sqlx::query_as(
        "SELECT payload, metadata FROM events WHERE aggregate_id = 'a' AND sequence = 2",
    )
    .fetch_one(&db.pool)
    .await
    .expect("event");
    assert_eq!(payload, json!({"MetadataChanged": {"name": "n2"}}));
    assert_eq!(metadata, json!({"user_id": "alice"}));
}

#[tokio::test]
async fn a_taken_sequence_is_a_conflict_and_writes_nothing_of_the_commit() {
    let db = TestDb::create().await;
    let log = PgEventLog::new(db.pool.clone());
    log.append(&[event("a", 1), event("a", 2)])
        .await
        .expect("first");
    let error = log
        .append(&[event("a", 2), event("a", 3)])
        .await
        .expect_err("sequence 2 is taken");
    assert!(matches!(error, AppendError::Conflict), "{error:?}");
    assert_eq!(
        rows(&db).await.len(),
        2,
        "nothing of the commit was written"
    );
}

#[tokio::test]
async fn an_append_that_is_not_one_streams_commit_is_refused() {
    let db = TestDb::create().await;
    let log = PgEventLog::new(db.pool.clone());
    for events in [
        vec![],
        vec![event("a", 1), event("b", 2)],
        vec![event("a", 1), event("a", 3)],
    ] {
        let error = log.append(&events).await.expect_err("not a commit");
        assert!(matches!(error, AppendError::Store(_)), "{error:?}");
    }
    assert!(rows(&db).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_of_one_sequence_store_exactly_one() {
    let db = TestDb::create().await;
    let log = std::sync::Arc::new(PgEventLog::new(db.pool.clone()));
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let log = log.clone();
            tokio::spawn(async move { log.append(&[event("race", 1)]).await })
        })
        .collect();
    let mut stored = 0;
    for attempt in attempts {
        match attempt.await.expect("task") {
            Ok(_) => stored += 1,
            Err(AppendError::Conflict) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(stored, 1);
    assert_eq!(rows(&db).await.len(), 1);
}

#[tokio::test]
async fn a_commit_that_does_not_continue_its_stream_is_a_conflict_and_writes_nothing() {
    let db = TestDb::create().await;
    let log = PgEventLog::new(db.pool.clone());
    let gap = log
        .append(&[event("a", 2)])
        .await
        .expect_err("the stream has no event 1");
    assert!(matches!(gap, AppendError::Conflict), "{gap:?}");
    log.append(&[event("a", 1)]).await.expect("first");
    let gap = log
        .append(&[event("a", 3), event("a", 4)])
        .await
        .expect_err("the stream has no event 2");
    assert!(matches!(gap, AppendError::Conflict), "{gap:?}");
    log.append(&[event("a", 2), event("a", 3)])
        .await
        .expect("a commit that continues the stream");
    let sequences: Vec<i64> = rows(&db).await.into_iter().map(|row| row.1).collect();
    assert_eq!(sequences, [1, 2, 3]);
}

/// Two replicas on one database: each keeps the state of the models it wrote, so each
/// one's state goes stale when the other writes. Every answer must be the one the store's
/// state gives.
#[tokio::test]
async fn replicas_with_stale_cached_states_decide_on_the_stores_state() {
    let db = TestDb::create().await;
    let a = CommandService::postgres(db.pool.clone());
    let b = CommandService::postgres(db.pool.clone());
    let tenant = TenantId::new("acme");
    let (id, create) = create(&tenant, "shared", "N");
    a.execute(id, create.clone(), &metadata())
        .await
        .expect("create on a");
    // b knows nothing of the model: its create, tried on a stream assumed new, conflicts and
    // is decided on the store's state.
    let taken = b
        .execute(id, create, &metadata())
        .await
        .expect_err("the key is taken");
    assert!(
        matches!(
            taken,
            CommandError::Rejected(ProcessModelError::KeyTaken { .. })
        ),
        "{taken:?}"
    );
    assert_eq!(b.state_cache_counts().stale(), 1);
    let name = |model: &ProcessModel| model.state().expect("exists").name.as_str().to_owned();

    // b moves the model to revision 2; a still holds revision 1.
    b.execute(id, rename(&tenant, "M", None), &metadata())
        .await
        .expect("rename on b");
    // An If-Match of the store's revision is right, whatever a's state says.
    let committed = a
        .execute(id, rename(&tenant, "O", Some(2)), &metadata())
        .await
        .expect("a's stale state must not refuse the current revision");
    assert_eq!(committed.model.revision(), 3);
    // And a stale one is refused, by the store's state.
    let stale = a
        .execute(id, rename(&tenant, "P", Some(2)), &metadata())
        .await
        .expect_err("revision 2 is stale");
    assert!(
        matches!(
            stale,
            CommandError::Rejected(ProcessModelError::StaleRevision {
                expected: 2,
                actual: 3
            })
        ),
        "{stale:?}"
    );

    // b's state (revision 2, "M") is stale now. Renaming to "M" is a change on the store's
    // state, not the no-op b's state suggests.
    let committed = b
        .execute(id, rename(&tenant, "M", None), &metadata())
        .await
        .expect("rename on b");
    assert_eq!(committed.model.revision(), 4);
    assert_eq!(committed.events.len(), 1);
    assert_eq!(name(&committed.model), "M");
    // a's state (revision 3, "O") is stale: "M" is now a no-op, answered with revision 4.
    let committed = a
        .execute(id, rename(&tenant, "M", None), &metadata())
        .await
        .expect("rename on a");
    assert!(committed.events.is_empty(), "{:?}", committed.events);
    assert_eq!(committed.model.revision(), 4);
    // A command on a stale state that the store would accept is appended on top.
    let committed = a
        .execute(id, rename(&tenant, "Q", None), &metadata())
        .await
        .expect("rename on a");
    assert_eq!(committed.model.revision(), 5);

    let stored = a.load(id).await.expect("load");
    assert_eq!(stored, committed.model, "the answer is the store's state");
    // Nobody else wrote since: a's next command starts from the state it keeps.
    let counts = a.state_cache_counts();
    let (hits, stale) = (counts.hits(), counts.stale());
    let committed = a
        .execute(id, rename(&tenant, "R", None), &metadata())
        .await
        .expect("rename on a");
    assert_eq!(committed.model.revision(), 6);
    assert_eq!((counts.hits(), counts.stale()), (hits + 1, stale));
    assert!(stale >= 2, "a's stale states were noticed: {stale}");
    let sequences: Vec<i64> = rows(&db).await.into_iter().map(|row| row.1).collect();
    assert_eq!(
        sequences,
        [1, 2, 3, 4, 5, 6],
        "one stream, no gap, no repeat"
    );
}
