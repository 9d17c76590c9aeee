//! The gap-safe feed against real PostgreSQL: concurrent writers with rollbacks and
//! long transactions, the xmin gate, notifications, a dropped listener, head and lag.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::{
    append, append_many, eventually, listening_connections, open_older_transaction, Rng, TestDb,
};
use projections::{feed, Feed, Position, StoredEvent, Wake};
use sqlx::PgPool;
use tokio::sync::{watch, Mutex};
use tokio::time::{sleep, timeout, Instant};

const WRITERS: u64 = 8;
const ROWS_PER_WRITER: u64 = 200;
const AGGREGATES: u64 = 12;

#[derive(Default)]
struct Written {
    committed: Vec<i64>,
    rolled_back: Vec<i64>,
}

/// Appends ROWS_PER_WRITER rows in transactions of 1–5 rows to shared aggregates, the way
/// an event store does (read the aggregate's last sequence, insert the next ones; a
/// concurrent append to the same aggregate makes the insert fail and the transaction roll
/// back). About 20% are rolled back on purpose; some are held open for 50–300 ms.
async fn writer(pool: PgPool, seed: u64) -> Written {
    let mut rng = Rng::new(seed);
    let mut written = Written::default();
    let mut attempted = 0;
    while attempted < ROWS_PER_WRITER {
        let rows = (1 + rng.below(5)).min(ROWS_PER_WRITER - attempted);
        attempted += rows;
        let aggregate = format!("agg-{}", rng.below(AGGREGATES));
        let roll_back = rng.below(100) < 20;
        let hold = (rng.below(100) < 15).then(|| Duration::from_millis(50 + rng.below(251)));

        let mut tx = pool.begin().await.expect("begin");
        let last: i64 = sqlx::query_scalar(
            "SELECT coalesce(max(sequence), 0) FROM events \
             WHERE aggregate_type = 'Test' AND aggregate_id = $1",
        )
        .bind(&aggregate)
        .fetch_one(&mut *tx)
        .await
        .expect("read the aggregate's last sequence");
        let mut positions = Vec::new();
        let mut conflicted = false;
        for offset in 1..=rows {
            let sequence = last + i64::try_from(offset).expect("small");
            match append(&mut *tx, &aggregate, sequence).await {
                Ok(position) => positions.push(position),
                // Another writer appended to this aggregate first (unique violation).
                Err(_) => {
                    conflicted = true;
                    break;
                }
            }
        }
        if let Some(hold) = hold {
            sleep(hold).await; // keeps the transaction open on purpose
        }
        if roll_back || conflicted {
            tx.rollback().await.expect("roll back");
            written.rolled_back.extend(positions);
        } else {
            tx.commit().await.expect("commit");
            written.committed.extend(positions);
        }
    }
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_every_committed_event_seen_once_in_aggregate_order() {
    let db = TestDb::create().await;
    let seen: Arc<Mutex<Vec<(Position, String, i64)>>> = Arc::default();
    let (stop, mut stopped) = watch::channel(false);

    let consumer = {
        let pool = db.pool.clone();
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut feed = Feed::with_poll_interval(pool, Duration::from_millis(100));
            let mut at = Position::START;
            loop {
                let batch = tokio::select! {
                    biased;
                    _ = stopped.wait_for(|stop| *stop) => return at,
                    batch = feed.next_batch(at, 37) => batch.expect("read the feed"),
                };
                let mut seen = seen.lock().await;
                for event in batch {
                    assert!(
                        event.position() > at,
                        "feed order went backwards: {} after {at}",
                        event.position()
                    );
                    at = event.position();
                    seen.push((at, event.aggregate_id, event.sequence));
                }
            }
        })
    };

    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(db.pool.clone(), 0x9e37_79b9 * (w + 1))))
        .collect();
    let mut committed = Vec::new();
    let mut rolled_back = Vec::new();
    for writer in writers {
        let written = writer.await.expect("writer task");
        committed.extend(written.committed);
        rolled_back.extend(written.rolled_back);
    }
    let seen_while_writing = seen.lock().await.len();

    let mut expected: Vec<i64> = sqlx::query_scalar("SELECT global_position FROM events")
        .fetch_all(&db.pool)
        .await
        .expect("read the committed events");
    expected.sort_unstable();
    committed.sort_unstable();
    assert_eq!(
        committed, expected,
        "the writers' commits are what the table holds"
    );
    assert!(
        !rolled_back.is_empty(),
        "the test should roll some appends back"
    );

    let deadline = Instant::now() + Duration::from_secs(15);
    while seen.lock().await.len() < expected.len() {
        assert!(Instant::now() < deadline, "the consumer did not catch up");
        sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).expect("stop the consumer");
    let at = consumer.await.expect("consumer task");
    assert!(
        feed::read_batch(&db.pool, at, 10)
            .await
            .expect("read after the end")
            .is_empty(),
        "nothing is left after the consumer's position"
    );

    let seen = seen.lock().await;
    let mut seen_positions: Vec<i64> = seen.iter().map(|(p, _, _)| p.global_position).collect();
    seen_positions.sort_unstable();
    assert_eq!(
        seen_positions, expected,
        "every committed event exactly once"
    );
    let rolled_back: HashSet<i64> = rolled_back.into_iter().collect();
    assert!(seen_positions.iter().all(|p| !rolled_back.contains(p)));

    let mut per_aggregate: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (_, aggregate, sequence) in seen.iter() {
        per_aggregate.entry(aggregate).or_default().push(*sequence);
    }
    for (aggregate, sequences) in per_aggregate {
        let in_order: Vec<i64> = (1..=i64::try_from(sequences.len()).expect("small")).collect();
        assert_eq!(
            sequences, in_order,
            "{aggregate} seen out of sequence order"
        );
    }
    eprintln!(
        "{} committed, {} rolled back, {} seen while writing, {:?}",
        expected.len(),
        rolled_back.len(),
        seen_while_writing,
        started.elapsed()
    );
}

#[tokio::test]
async fn a_read_says_whether_committed_events_wait_behind_the_gate() {
    let db = TestDb::create().await;
    let older = open_older_transaction(&db.pool).await;
    let held = append(&db.pool, "newer", 1).await.expect("append");
    let batch = feed::read_next(&db.pool, Position::START, 10)
        .await
        .expect("read");
    assert!(batch.events.is_empty(), "the commit waits behind the gate");
    assert!(batch.held_back, "and the read says so");
    older.rollback().await.expect("end the older transaction");

    for sequence in 2..=4 {
        append(&db.pool, "newer", sequence).await.expect("append");
    }
    let all = read_at_least(&db.pool, 4).await;
    assert_eq!(all[0].global_position, held);
    let deadline = Instant::now() + Duration::from_secs(10);
    let batch = loop {
        // Other tests' transactions may hold the gate for a moment.
        let batch = feed::read_next(&db.pool, Position::START, 3)
            .await
            .expect("read");
        if batch.events.len() == 3 || Instant::now() > deadline {
            break batch;
        }
        sleep(Duration::from_millis(20)).await;
    };
    let positions: Vec<i64> = batch.events.iter().map(|e| e.global_position).collect();
    let expected: Vec<i64> = all[..3].iter().map(|e| e.global_position).collect();
    assert_eq!(positions, expected, "feed order, up to the limit");

    let last = all[3].position();
    let after_all = feed::read_next(&db.pool, last, 10).await.expect("read");
    assert!(after_all.events.is_empty());
    assert!(
        !after_all.held_back,
        "nothing is committed after the last event"
    );
}

#[tokio::test]
async fn a_read_of_readable_events_also_says_when_later_ones_are_held_back() {
    let db = TestDb::create().await;
    let readable = append(&db.pool, "before", 1).await.expect("append");
    let older = open_older_transaction(&db.pool).await;
    append(&db.pool, "after", 1).await.expect("append");
    let deadline = Instant::now() + Duration::from_secs(10);
    let batch = loop {
        // Other tests' transactions may hold the gate in front of the first event too.
        let batch = feed::read_next(&db.pool, Position::START, 10)
            .await
            .expect("read");
        if !batch.events.is_empty() || Instant::now() > deadline {
            break batch;
        }
        sleep(Duration::from_millis(20)).await;
    };
    let positions: Vec<i64> = batch.events.iter().map(|e| e.global_position).collect();
    assert_eq!(positions, vec![readable], "only the event below the gate");
    assert!(batch.held_back, "the later commit waits behind the gate");
    older.rollback().await.expect("end the older transaction");
}

/// Appends an event whose payload holds 3 200 characters of random hex (which PostgreSQL
/// cannot compress away); its global position and stored payload size.
async fn append_large(pool: &PgPool, aggregate_id: &str, sequence: i64) -> (i64, i64) {
    let position: i64 = sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Test', $1, $2, 'Happened', '1.0', jsonb_build_object('Happened', jsonb_build_object('blob', \
                 (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 100)))), '{}') \
         RETURNING global_position",
    )
    .bind(aggregate_id)
    .bind(sequence)
    .fetch_one(pool)
    .await
    .expect("append a large event");
    // As stored (compressed): RETURNING shows the value before it is.
    let size = sqlx::query_scalar(
        "SELECT pg_column_size(payload)::bigint FROM events WHERE global_position = $1",
    )
    .bind(position)
    .fetch_one(pool)
    .await
    .expect("stored size");
    (position, size)
}

#[tokio::test]
async fn a_batch_ends_where_its_payloads_reach_the_byte_budget() {
    let db = TestDb::create().await;
    let mut appended = Vec::new();
    for sequence in 1..=5 {
        appended.push(append_large(&db.pool, "large", sequence).await);
    }
    let positions: Vec<i64> = appended.iter().map(|(position, _)| *position).collect();
    read_at_least(&db.pool, 5).await;
    let read = |limit: i64, max_bytes: i64| {
        let pool = db.pool.clone();
        async move {
            feed::read_next_within(&pool, Position::START, limit, max_bytes)
                .await
                .expect("read")
        }
    };
    let ids = |batch: &feed::Batch| -> Vec<i64> {
        batch.events.iter().map(|e| e.global_position).collect()
    };

    let two = appended[0].1 + appended[1].1;
    let batch = read(10, two).await;
    assert_eq!(
        ids(&batch),
        positions[..2],
        "the event that reaches the budget is the last"
    );
    assert!(batch.truncated, "and the batch says more is readable");

    let plain = feed::read_batch_within(&db.pool, Position::START, 10, two)
        .await
        .expect("read");
    let plain: Vec<i64> = plain.iter().map(|e| e.global_position).collect();
    assert_eq!(
        plain,
        positions[..2],
        "the rebuild's read cuts at the same place"
    );

    let batch = read(10, two + 1).await;
    assert_eq!(
        ids(&batch),
        positions[..3],
        "one byte more lets the next one start"
    );

    let batch = read(10, 1).await;
    assert_eq!(ids(&batch), positions[..1], "the first event always comes");
    assert!(batch.truncated);

    let batch = read(2, i64::MAX).await;
    assert_eq!(ids(&batch), positions[..2]);
    assert!(!batch.truncated, "the limit, not the budget, ended it");

    let batch = read(10, i64::MAX).await;
    assert_eq!(ids(&batch), positions);
    assert!(!batch.truncated);
}

#[tokio::test]
async fn an_open_older_transaction_holds_back_newer_commits() {
    let db = TestDb::create().await;
    let mut older = db.pool.begin().await.expect("begin");
    let first = append(&mut *older, "older", 1).await.expect("append");
    let second = append(&db.pool, "newer", 1).await.expect("append");
    let mut rolled_back = db.pool.begin().await.expect("begin");
    append(&mut *rolled_back, "never", 1).await.expect("append");
    rolled_back.rollback().await.expect("roll back");

    assert!(
        feed::read_batch(&db.pool, Position::START, 10)
            .await
            .expect("read")
            .is_empty(),
        "the newer commit waits behind the open older transaction"
    );
    assert_eq!(
        feed::count_after(&db.pool, Position::START)
            .await
            .expect("lag"),
        1,
        "lag counts the committed event all the same"
    );

    older.commit().await.expect("commit");
    let events = read_at_least(&db.pool, 2).await;
    let positions: Vec<i64> = events.iter().map(|e| e.global_position).collect();
    assert_eq!(
        positions,
        vec![first, second],
        "transaction order, no rollback"
    );
    assert!(events[0].tx_id < events[1].tx_id);
    assert_eq!(events[1].aggregate_id, "newer");
    assert_eq!(
        *events[1].payload,
        serde_json::json!({"Happened": {"n": 1}})
    );
}

#[tokio::test]
async fn orders_transaction_ids_as_numbers() {
    let db = TestDb::create().await;
    // Transaction ids across a digit boundary (set by hand; both long finished), so a
    // text sort would put 10 before 9.
    for (aggregate, tx_id) in [("ten", "10"), ("nine", "9"), ("hundred", "100")] {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                                 payload, metadata, tx_id) \
             VALUES ('Test', $1, 1, 'Happened', '1.0', '{}', '{}', $2::xid8)",
        )
        .bind(aggregate)
        .bind(tx_id)
        .execute(&db.pool)
        .await
        .expect("append with a given transaction id");
    }
    let events = read_at_least(&db.pool, 3).await;
    let order: Vec<(u64, &str)> = events
        .iter()
        .map(|event| (event.tx_id, event.aggregate_id.as_str()))
        .collect();
    assert_eq!(order, vec![(9, "nine"), (10, "ten"), (100, "hundred")]);
    let after_nine = events[0].position();
    let rest = feed::read_batch(&db.pool, after_nine, 10)
        .await
        .expect("read");
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[0].tx_id, 10);
}

#[tokio::test]
async fn wakes_on_notify_and_survives_a_dropped_listener() {
    let db = TestDb::create().await;
    // A poll interval far beyond the guard below: only a notification can wake it.
    let mut feed = Feed::with_poll_interval(db.pool.clone(), Duration::from_secs(600));
    assert!(feed.listen().await, "listening");
    let guard = Duration::from_secs(10);

    append(&db.pool, "a", 1).await.expect("append");
    let wake = timeout(guard, feed.wait_for_more()).await.expect("woken");
    assert_eq!(wake, Wake::Notified);
    let appended = read_at_least(&db.pool, 1).await[0].tx_id;
    assert_eq!(
        feed.notified_tx(),
        Some(appended),
        "the notification names the appending transaction"
    );

    // Two transactions: the wakes (one, or two if the second notification arrives late)
    // name the newer one last.
    append(&db.pool, "b", 1).await.expect("append");
    append(&db.pool, "c", 1).await.expect("append");
    let newest = read_at_least(&db.pool, 3).await[2].tx_id;
    loop {
        let wake = timeout(guard, feed.wait_for_more()).await.expect("woken");
        assert_eq!(wake, Wake::Notified);
        let named = feed.notified_tx().expect("a transaction is named");
        assert!(named > appended && named <= newest);
        if named == newest {
            break;
        }
    }

    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .fetch_all(&db.pool)
    .await
    .expect("terminate the listener");
    assert_eq!(killed, vec![true], "one listener connection");
    let wake = timeout(guard, feed.wait_for_more()).await.expect("woken");
    assert_eq!(wake, Wake::Resubscribed, "reports the lost connection");
    assert_eq!(feed.notified_tx(), None, "no notification, no transaction");

    append(&db.pool, "a", 2).await.expect("append");
    let wake = timeout(guard, feed.wait_for_more()).await.expect("woken");
    assert_eq!(wake, Wake::Notified, "listening again after the reconnect");
    assert_eq!(read_at_least(&db.pool, 4).await.len(), 4);
}

#[tokio::test]
async fn a_reader_past_the_notified_transaction_is_not_woken() {
    let db = TestDb::create().await;
    let mut feed = Feed::with_poll_interval(db.pool.clone(), Duration::from_secs(600));
    assert!(feed.listen().await, "listening");
    append(&db.pool, "a", 1).await.expect("append");
    let read = read_at_least(&db.pool, 1).await[0].position();
    // Read past: a reader in a later transaction has nothing new from that notification.
    let past = Position::new(read.tx_id + 1, 0);
    assert!(
        timeout(Duration::from_millis(300), feed.wait_for_news(past))
            .await
            .is_err(),
        "the stale notification woke the reader"
    );
    append(&db.pool, "b", 1).await.expect("append");
    let wake = timeout(Duration::from_secs(10), feed.wait_for_news(read))
        .await
        .expect("woken by the newer transaction");
    assert_eq!(wake, Wake::Notified);
}

#[tokio::test]
async fn polls_when_nothing_is_notified() {
    let db = TestDb::create().await;
    let mut feed = Feed::with_poll_interval(db.pool.clone(), Duration::from_millis(50));
    assert!(feed.listen().await);
    let wake = timeout(Duration::from_secs(10), feed.wait_for_more())
        .await
        .expect("returns after the poll interval");
    assert_eq!(wake, Wake::Timeout);
}

#[tokio::test]
async fn a_polling_feed_never_listens_and_wakes_on_its_interval_alone() {
    let db = TestDb::create().await;
    let interval = Duration::from_millis(200);
    let mut feed = Feed::polling(db.pool.clone(), interval);
    assert!(!feed.listen().await, "a polling feed does not listen");
    let started = Instant::now();
    append(&db.pool, "a", 1).await.expect("append");
    let wake = timeout(Duration::from_secs(10), feed.wait_for_more())
        .await
        .expect("returns after the poll interval");
    assert_eq!(
        wake,
        Wake::Timeout,
        "the append's notification does not wake it"
    );
    assert!(started.elapsed() >= interval, "woke before its interval");
    assert_eq!(feed.notified_tx(), None);
    let listeners = listening_connections(&db.pool).await;
    assert_eq!(
        listeners, 0,
        "no LISTEN connection, so no notification to deliver"
    );
}

#[tokio::test]
async fn head_lag_and_positions() {
    let db = TestDb::create().await;
    let empty = feed::head(&db.pool).await.expect("head");
    assert_eq!(empty.readable, None);
    assert_eq!(empty.max_global_position, None);

    let positions = append_many(&db.pool, "m", 3).await;
    let first = feed::position_of(&db.pool, positions[0])
        .await
        .expect("position")
        .expect("committed");
    let last = feed::position_of(&db.pool, positions[2])
        .await
        .expect("position")
        .expect("committed");
    assert_eq!(
        feed::position_of(&db.pool, 999_999).await.expect("query"),
        None
    );
    assert_eq!(
        feed::last_position_of(&db.pool, "Test", "m")
            .await
            .expect("query"),
        Some(last)
    );

    // Other tests' open transactions (xids are cluster-wide) may hold the head back.
    eventually("the head is readable", Duration::from_secs(10), || async {
        feed::head(&db.pool).await.expect("head").readable == Some(last)
    })
    .await;
    let head = feed::head(&db.pool).await.expect("head");
    assert_eq!(head.max_global_position, Some(positions[2]));
    assert_eq!(
        feed::count_after(&db.pool, Position::START)
            .await
            .expect("lag"),
        3
    );
    assert_eq!(feed::count_after(&db.pool, first).await.expect("lag"), 2);
    assert_eq!(feed::count_after(&db.pool, last).await.expect("lag"), 0);
}

/// Every event from the start once at least `count` are readable: transactions open in
/// other tests (xids are cluster-wide) may hold the feed back for a moment.
async fn read_at_least(pool: &PgPool, count: usize) -> Vec<StoredEvent> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = feed::read_batch(pool, Position::START, 1_000)
            .await
            .expect("read");
        if events.len() >= count {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "only {} events readable",
            events.len()
        );
        sleep(Duration::from_millis(20)).await;
    }
}
