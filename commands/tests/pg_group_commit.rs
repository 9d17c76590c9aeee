//! Group commit: concurrent appends to different streams written by one statement, each
//! commit still checked on its own and answered with its own place or conflict.
//!
//! The tests hold the writers back with a lock on `events` (an append waits for it), queue
//! commits behind them, and release the lock: what queued meanwhile is written as groups.

#[path = "common/pg.rs"]
mod pg;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use commands::postgres::PgEventLog;
use commands::store::{AppendError, EventLog};
use commands::StorePosition;
use pg::{event, rows, TestDb};
use sqlx::{Connection, Executor, PgConnection};
use tokio::task::JoinHandle;

type Appended = JoinHandle<Result<StorePosition, AppendError>>;

/// Appends one commit of `events` sequences to `stream` in a task of its own.
fn append(log: &Arc<PgEventLog>, stream: &str, sequences: &[usize]) -> Appended {
    let log = log.clone();
    let events: Vec<_> = sequences.iter().map(|s| event(stream, *s)).collect();
    tokio::spawn(async move { log.append(&events).await })
}

/// A transaction on a connection of its own that holds `events` against every append
/// (`INSERT` waits, reads do not) until it ends.
async fn hold_appends(db: &TestDb) -> PgConnection {
    let mut conn = PgConnection::connect_with(&db.connect_options())
        .await
        .expect("connect");
    conn.execute("BEGIN; LOCK TABLE events IN EXCLUSIVE MODE")
        .await
        .expect("lock");
    conn
}

/// Gives each writer a commit of its own to hold (one of `streams` each, one at a time, so
/// no two of them are one group) before the commits under test queue behind them.
async fn occupy_writers(log: &Arc<PgEventLog>, streams: &[&str]) -> Vec<Appended> {
    let mut held = Vec::with_capacity(streams.len());
    for stream in streams {
        held.push(append(log, stream, &[1]));
        settle().await;
    }
    held
}

/// Lets the spawned appends reach the writers or the queue.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_queued_behind_a_write_are_written_together_each_at_its_own_place() {
    let db = TestDb::create().await;
    let log = Arc::new(PgEventLog::new(db.pool.clone()));
    let mut held = hold_appends(&db).await;
    let streams: Vec<String> = (0..40).map(|i| format!("m{i:02}")).collect();
    let tasks: Vec<(String, Appended)> = streams
        .iter()
        .map(|s| (s.clone(), append(&log, s, &[1, 2])))
        .collect();
    settle().await;
    held.execute("COMMIT").await.expect("release");

    let mut answered = BTreeMap::new();
    for (stream, task) in tasks {
        let position = task.await.expect("task").expect("appended");
        answered.insert(stream, position);
    }
    let stored = rows(&db).await;
    assert_eq!(stored.len(), 80, "every commit written whole");
    for (stream, position) in &answered {
        let last = stored
            .iter()
            .filter(|row| &row.0 == stream)
            .map(|row| (row.2, row.3))
            .max_by_key(|(_, global)| *global)
            .expect("stored");
        assert_eq!(
            (position.tx_id, position.global_position),
            last,
            "{stream} answers with its last event's place"
        );
        let sequences: Vec<i64> = stored
            .iter()
            .filter(|row| &row.0 == stream)
            .map(|row| row.1)
            .collect();
        assert_eq!(sequences, [1, 2], "{stream}'s events in order");
    }
    // The two writers were held with what they took first; the rest queued and went in
    // groups of up to 64, several commits per transaction.
    let transactions: BTreeSet<i64> = stored.iter().map(|row| row.2).collect();
    assert!(
        transactions.len() <= 6,
        "40 commits in {} transactions",
        transactions.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_that_does_not_continue_its_stream_fails_alone_in_its_group() {
    let db = TestDb::create().await;
    let log = Arc::new(PgEventLog::new(db.pool.clone()));
    let mut held = hold_appends(&db).await;
    // One held commit per writer, then three commits queued behind them: one group.
    let occupied = occupy_writers(&log, &["w1", "w2"]).await;
    let good = append(&log, "a", &[1]);
    let gap = append(&log, "b", &[3, 4]);
    let also_good = append(&log, "c", &[1, 2]);
    settle().await;
    held.execute("COMMIT").await.expect("release");

    for task in occupied {
        task.await.expect("task").expect("appended");
    }
    let a = good.await.expect("task").expect("a appended");
    let c = also_good.await.expect("task").expect("c appended");
    let refused = gap.await.expect("task").expect_err("b has no event 2");
    assert!(matches!(refused, AppendError::Conflict), "{refused:?}");
    assert_eq!(a.tx_id, c.tx_id, "a and c were written together");
    let stored: Vec<(String, i64)> = rows(&db).await.into_iter().map(|r| (r.0, r.1)).collect();
    assert!(stored.iter().all(|(stream, _)| stream != "b"), "{stored:?}");
    assert_eq!(stored.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_that_hits_a_taken_sequence_is_written_commit_by_commit() {
    let db = TestDb::create().await;
    let log = Arc::new(PgEventLog::new(db.pool.clone()));
    let mut held = hold_appends(&db).await;
    // Both writers wait with "s" and "t"; the group queued behind them has another first
    // event of "s", which the statement finds taken once the first "s" commits.
    let occupied = occupy_writers(&log, &["s", "t"]).await;
    let u = append(&log, "u", &[1]);
    let second_s = append(&log, "s", &[1]);
    let v = append(&log, "v", &[1, 2]);
    settle().await;
    held.execute("COMMIT").await.expect("release");

    for task in occupied {
        task.await.expect("task").expect("the first s, and t");
    }
    u.await.expect("task").expect("u, though its group failed");
    v.await.expect("task").expect("v, though its group failed");
    let taken = second_s.await.expect("task").expect_err("s 1 is taken");
    assert!(matches!(taken, AppendError::Conflict), "{taken:?}");
    let mut stored: Vec<(String, i64)> = rows(&db).await.into_iter().map(|r| (r.0, r.1)).collect();
    stored.sort();
    let expected: Vec<(String, i64)> = [("s", 1), ("t", 1), ("u", 1), ("v", 1), ("v", 2)]
        .into_iter()
        .map(|(s, n)| (s.to_owned(), n))
        .collect();
    assert_eq!(stored, expected);
}
