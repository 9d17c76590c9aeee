//! The projector runner against real PostgreSQL: effects and checkpoint commit together,
//! a failing event stops progress right before it and never gets skipped, one active
//! runner per name with fail-over, and read-your-writes waits.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{
    append, append_many, eventually, listening_connections, open_older_transaction, TestDb,
};
use projections::{
    checkpoint, feed, FeedError, Position, ProjectionError, Projector, ProjectorHandle,
    ProjectorRunner, RunnerConfig, RunnerState, StoredEvent,
};
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const NAME: &str = "recorder";
const LIMIT: Duration = Duration::from_secs(10);

/// Records every event it applies in `projected`; fails on the event whose global
/// position is in `fail_at` (0: none), after having written the batch's earlier rows.
struct Recorder {
    runner: &'static str,
    fail_at: Arc<AtomicI64>,
}

#[async_trait]
impl Projector for Recorder {
    fn name(&self) -> &str {
        NAME
    }

    async fn apply(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        for event in events {
            sqlx::query(
                "INSERT INTO projected (global_position, aggregate_id, sequence, runner) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(event.global_position)
            .bind(&event.aggregate_id)
            .bind(event.sequence)
            .bind(self.runner)
            .execute(&mut **tx)
            .await?;
            if event.global_position == self.fail_at.load(Ordering::SeqCst) {
                return Err(ProjectionError::failed(
                    event.global_position,
                    "poisoned event",
                ));
            }
        }
        Ok(())
    }
}

struct Running {
    handle: ProjectorHandle,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        self.stop.send(true).expect("runner is listening");
        self.task.await.expect("runner task");
    }
}

fn config() -> RunnerConfig {
    RunnerConfig {
        batch_size: 10,
        poll_interval: Duration::from_millis(100),
        lock_retry_interval: Duration::from_millis(100),
        lock_check_interval: Duration::from_millis(100),
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        wait_poll_interval: Duration::from_millis(20),
        ..RunnerConfig::default()
    }
}

fn start(pool: &PgPool, projector: impl Projector, config: RunnerConfig) -> Running {
    let runner = ProjectorRunner::new(pool.clone(), Arc::new(projector), config);
    let handle = runner.handle();
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(runner.run(async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    }));
    Running { handle, stop, task }
}

fn recorder(runner: &'static str) -> Recorder {
    Recorder {
        runner,
        fail_at: Arc::default(),
    }
}

async fn create_projected(pool: &PgPool) {
    sqlx::query(
        "CREATE TABLE projected (global_position bigint PRIMARY KEY, aggregate_id text NOT NULL, \
         sequence bigint NOT NULL, runner text NOT NULL, applied bigserial)",
    )
    .execute(pool)
    .await
    .expect("create the test projection table");
}

async fn position(pool: &PgPool, global_position: i64) -> Position {
    feed::position_of(pool, global_position)
        .await
        .expect("query")
        .expect("committed")
}

/// In one snapshot: the events up to the committed checkpoint are exactly the projected
/// rows, i.e. effects and checkpoint never part. Returns how many there are.
async fn assert_effects_match_checkpoint(pool: &PgPool) -> usize {
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await
        .expect("repeatable read");
    let at = checkpoint::load(&mut *tx, NAME)
        .await
        .expect("load")
        .map_or(Position::START, |checkpoint| checkpoint.position);
    let processed: Vec<i64> = sqlx::query_scalar(
        "SELECT global_position FROM events \
         WHERE (tx_id, global_position) <= ($1::text::xid8, $2) ORDER BY global_position",
    )
    .bind(at.tx_id.to_string())
    .bind(at.global_position)
    .fetch_all(&mut *tx)
    .await
    .expect("events up to the checkpoint");
    let projected: Vec<i64> =
        sqlx::query_scalar("SELECT global_position FROM projected ORDER BY global_position")
            .fetch_all(&mut *tx)
            .await
            .expect("projected rows");
    tx.commit().await.expect("end the snapshot");
    assert_eq!(projected, processed, "effects and checkpoint went apart");
    projected.len()
}

#[tokio::test]
async fn a_failing_event_stops_progress_right_before_it_until_it_succeeds() {
    let db = TestDb::create().await;
    create_projected(&db.pool).await;
    let positions = append_many(&db.pool, "a", 30).await;
    let poison = positions[16];
    let failing = recorder("a");
    let fail_at = failing.fail_at.clone();
    fail_at.store(poison, Ordering::SeqCst);
    let running = start(&db.pool, failing, config());
    let handle = running.handle.clone();

    eventually("the runner keeps failing", LIMIT, || async {
        let status = handle.status();
        status.state == RunnerState::Failing && status.consecutive_failures >= 3
    })
    .await;
    let status = handle.status();
    let before_poison = position(&db.pool, positions[15]).await;
    assert_eq!(
        status.checkpoint,
        Some(before_poison),
        "stops right before the poison"
    );
    assert!(status.lock_held);
    assert!(status
        .last_error
        .as_deref()
        .is_some_and(|error| error.contains("poisoned event")));
    assert_eq!(assert_effects_match_checkpoint(&db.pool).await, 16);
    let poison_position = position(&db.pool, poison).await;
    assert!(
        !handle
            .wait_for(poison_position, Duration::from_millis(300))
            .await,
        "the poisoned event is not processed"
    );
    assert_eq!(handle.lag().await.expect("lag"), 14);

    fail_at.store(0, Ordering::SeqCst);
    let last = position(&db.pool, positions[29]).await;
    assert!(handle.wait_for(last, LIMIT).await, "catches up");
    assert_eq!(assert_effects_match_checkpoint(&db.pool).await, 30);
    let status = handle.status();
    assert_eq!(status.state, RunnerState::Running);
    assert_eq!(status.last_error, None);

    // And keeps going with new events.
    let more = append(&db.pool, "b", 1).await.expect("append");
    assert!(handle.wait_for_event(more, LIMIT).await.expect("wait"));
    assert_eq!(assert_effects_match_checkpoint(&db.pool).await, 31);
    assert_eq!(handle.lag().await.expect("lag"), 0);

    running.stop().await;
    assert_eq!(handle.status().state, RunnerState::Idle);
}

#[tokio::test]
async fn a_catch_up_reading_ahead_applies_every_event_once_in_feed_order_while_writers_append() {
    let db = TestDb::create().await;
    create_projected(&db.pool).await;
    append_many(&db.pool, "backlog", 95).await;
    let running = start(&db.pool, recorder("a"), config());
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let pool = db.pool.clone();
            tokio::spawn(async move {
                let aggregate = format!("writer-{writer}");
                for sequence in 1..=40 {
                    let mut tx = pool.begin().await.expect("begin");
                    append(&mut *tx, &aggregate, sequence)
                        .await
                        .expect("append");
                    if sequence % 7 == 0 {
                        // Held open a while: later commits wait behind it in the feed.
                        tokio::time::sleep(Duration::from_millis(30)).await;
                    }
                    tx.commit().await.expect("commit");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let last: i64 = sqlx::query_scalar("SELECT max(global_position) FROM events")
        .fetch_one(&db.pool)
        .await
        .expect("last event");
    let last = position(&db.pool, last).await;
    let handle = running.handle.clone();
    assert!(handle.wait_for(last, LIMIT).await, "catches up");
    assert_eq!(assert_effects_match_checkpoint(&db.pool).await, 95 + 4 * 40);
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT global_position FROM projected ORDER BY applied")
            .fetch_all(&db.pool)
            .await
            .expect("applied order");
    let feed_order: Vec<i64> =
        sqlx::query_scalar("SELECT global_position FROM events ORDER BY tx_id, global_position")
            .fetch_all(&db.pool)
            .await
            .expect("feed order");
    assert_eq!(applied, feed_order, "applied in feed order");
    running.stop().await;
}

#[tokio::test]
async fn batches_cut_by_the_byte_budget_go_on_without_waiting_for_a_poll() {
    let db = TestDb::create().await;
    create_projected(&db.pool).await;
    let positions = append_many(&db.pool, "budget", 40).await;
    let running = start(
        &db.pool,
        recorder("a"),
        RunnerConfig {
            // Every batch is one event, cut by the budget long before the limit.
            batch_bytes: 1,
            poll_interval: Duration::from_secs(60),
            ..config()
        },
    );
    let last = position(&db.pool, positions[39]).await;
    assert!(
        running.handle.wait_for(last, LIMIT).await,
        "a cut batch reads on at once"
    );
    assert_eq!(assert_effects_match_checkpoint(&db.pool).await, 40);
    running.stop().await;
}

#[tokio::test]
async fn a_runner_without_notifications_applies_what_was_appended_by_its_next_poll() {
    let db = TestDb::create().await;
    create_projected(&db.pool).await;
    let running = start(
        &db.pool,
        recorder("a"),
        RunnerConfig {
            notifications: false,
            poll_interval: Duration::from_millis(150),
            ..config()
        },
    );
    let handle = running.handle.clone();
    eventually("the runner is caught up", LIMIT, || async {
        handle.status().checkpoint.is_some()
    })
    .await;
    // Appended in bursts while it waits: each burst is applied by a poll, none is lost.
    let mut last = 0;
    for burst in 0..3 {
        let positions = append_many(&db.pool, &format!("burst-{burst}"), 7).await;
        last = positions[6];
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let last = position(&db.pool, last).await;
    assert!(handle.wait_for(last, LIMIT).await, "applied by the polls");
    assert_eq!(assert_effects_match_checkpoint(&db.pool).await, 21);
    let listeners = listening_connections(&db.pool).await;
    assert_eq!(listeners, 0, "it never listened");
    running.stop().await;
}

#[tokio::test]
async fn one_active_runner_per_name_and_the_standby_takes_over_on_shutdown() {
    let db = TestDb::create().await;
    create_projected(&db.pool).await;
    let a = start(&db.pool, recorder("a"), config());
    let b = start(&db.pool, recorder("b"), config());

    eventually(
        "one runner is active, the other stands by",
        LIMIT,
        || async {
            let states = [a.handle.status().state, b.handle.status().state];
            states.contains(&RunnerState::Running) && states.contains(&RunnerState::Standby)
        },
    )
    .await;
    let (active, standby, active_name, standby_name) =
        if a.handle.status().state == RunnerState::Running {
            (a, b, "a", "b")
        } else {
            (b, a, "b", "a")
        };

    let first = append_many(&db.pool, "first", 20).await;
    let last = position(&db.pool, first[19]).await;
    assert!(active.handle.wait_for(last, LIMIT).await);
    assert!(
        standby.handle.wait_for(last, LIMIT).await,
        "a standby's handle waits on the committed checkpoint"
    );
    assert_eq!(standby.handle.status().state, RunnerState::Standby);
    assert!(!standby.handle.status().lock_held);

    active.stop().await;
    eventually("the standby takes over", LIMIT, || async {
        standby.handle.status().state == RunnerState::Running
    })
    .await;
    let second = append_many(&db.pool, "second", 20).await;
    let last = position(&db.pool, second[19]).await;
    assert!(standby.handle.wait_for(last, LIMIT).await);
    assert_eq!(assert_effects_match_checkpoint(&db.pool).await, 40);

    let by: Vec<(String, i64)> =
        sqlx::query_as("SELECT runner, count(*) FROM projected GROUP BY runner ORDER BY runner")
            .fetch_all(&db.pool)
            .await
            .expect("who projected what");
    let mut expected = vec![(active_name.to_owned(), 20), (standby_name.to_owned(), 20)];
    expected.sort();
    assert_eq!(
        by, expected,
        "each event projected once, by the lock holder"
    );
    standby.stop().await;

    eventually("stopped runners leave no lock or listener behind", LIMIT, || async {
        let left: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
                       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())) \
                  + (SELECT count(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND query LIKE 'LISTEN%')",
        )
        .fetch_one(&db.pool)
        .await
        .expect("count");
        left == 0
    })
    .await;
}

#[tokio::test]
async fn the_standby_takes_over_when_the_holders_lock_connection_dies() {
    let db = TestDb::create().await;
    create_projected(&db.pool).await;
    // The first holder would retry the lock only after the test is over, so the standby
    // must be the one to take it.
    let a = start(
        &db.pool,
        recorder("a"),
        RunnerConfig {
            lock_retry_interval: Duration::from_secs(600),
            ..config()
        },
    );
    eventually("a runs", LIMIT, || async {
        a.handle.status().state == RunnerState::Running
    })
    .await;
    let b = start(&db.pool, recorder("b"), config());
    eventually("b stands by", LIMIT, || async {
        b.handle.status().state == RunnerState::Standby
    })
    .await;
    let before = append_many(&db.pool, "before", 5).await;
    assert!(a
        .handle
        .wait_for_event(before[4], LIMIT)
        .await
        .expect("wait"));

    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_locks \
         WHERE locktype = 'advisory' \
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_all(&db.pool)
    .await
    .expect("terminate the lock holder's connection");
    assert_eq!(killed, vec![true], "one advisory lock, a's");

    eventually("b takes over and a notices", LIMIT, || async {
        b.handle.status().state == RunnerState::Running
            && a.handle.status().state == RunnerState::Standby
    })
    .await;
    let after = append_many(&db.pool, "after", 5).await;
    assert!(b
        .handle
        .wait_for_event(after[4], LIMIT)
        .await
        .expect("wait"));
    assert_eq!(assert_effects_match_checkpoint(&db.pool).await, 10);
    let by_b: i64 = sqlx::query_scalar("SELECT count(*) FROM projected WHERE runner = 'b'")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(by_b, 5);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn read_your_writes_compares_feed_positions_not_global_positions() {
    let db = TestDb::create().await;
    create_projected(&db.pool).await;
    let gated = recorder("a");
    let fail_at = gated.fail_at.clone();

    // `early` gets a transaction id first but its event the higher global position, so
    // the feed delivers early's event (higher global position) before late's (lower).
    let mut early = open_older_transaction(&db.pool).await;
    let low = append(&db.pool, "late", 1).await.expect("append");
    let high = append(&mut *early, "early", 1).await.expect("append");
    early.commit().await.expect("commit");
    assert!(high > low);
    assert!(position(&db.pool, high).await < position(&db.pool, low).await);

    fail_at.store(low, Ordering::SeqCst);
    let running = start(&db.pool, gated, config());
    let handle = running.handle.clone();
    assert!(handle.wait_for_event(high, LIMIT).await.expect("wait"));
    assert!(
        !handle
            .wait_for_event(low, Duration::from_millis(300))
            .await
            .expect("wait"),
        "a processed higher global position does not mean the lower one is processed"
    );

    fail_at.store(0, Ordering::SeqCst);
    assert!(handle.wait_for_event(low, LIMIT).await.expect("wait"));

    // Each write is visible in the projection as soon as the wait returns.
    let detached = ProjectorHandle::detached(db.pool.clone(), NAME, Duration::from_millis(20));
    for sequence in 1..=5 {
        let written = append(&db.pool, "ryw", sequence).await.expect("append");
        let waited = if sequence % 2 == 0 {
            detached.wait_for_event(written, LIMIT).await
        } else {
            handle.wait_for_aggregate("Test", "ryw", LIMIT).await
        };
        assert!(waited.expect("wait"));
        let projected: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM projected WHERE global_position = $1)",
        )
        .bind(written)
        .fetch_one(&db.pool)
        .await
        .expect("query");
        assert!(projected, "read-your-writes");
    }
    assert!(matches!(
        handle.wait_for_event(999_999, LIMIT).await,
        Err(FeedError::UnknownEvent(999_999))
    ));
    assert_eq!(detached.status().state, RunnerState::Idle);
    running.stop().await;
}

/// A recording runner whose poll interval is far longer than a test may take (only a
/// notification or the runner's recheck brings an event in time), with one event applied;
/// the global position of that event.
async fn start_slow_poll_and_warm(db: &TestDb) -> (Running, i64) {
    let slow_poll = RunnerConfig {
        poll_interval: Duration::from_secs(30),
        ..config()
    };
    let running = start(&db.pool, recorder("a"), slow_poll);
    let first = append(&db.pool, "warm", 1).await.expect("append");
    assert!(running
        .handle
        .wait_for_event(first, LIMIT)
        .await
        .expect("wait"));
    (running, first)
}

#[tokio::test]
async fn an_event_held_back_by_a_short_open_transaction_follows_it_without_waiting_for_a_poll() {
    let db = TestDb::create().await;
    create_projected(&db.pool).await;
    let (running, _) = start_slow_poll_and_warm(&db).await;
    let handle = running.handle.clone();

    // An older transaction holds the xmin gate shut; the event committed after it is
    // notified but not readable yet, and its end sends no notification.
    let older = open_older_transaction(&db.pool).await;
    let held = append(&db.pool, "held", 1).await.expect("append");
    tokio::time::sleep(Duration::from_millis(150)).await;
    older.rollback().await.expect("end the older transaction");

    let started = std::time::Instant::now();
    assert!(
        handle
            .wait_for_event(held, Duration::from_secs(5))
            .await
            .expect("wait"),
        "the held-back event was applied once the gate opened"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(assert_effects_match_checkpoint(&db.pool).await, 2);
    running.stop().await;
}

#[tokio::test]
async fn a_burst_of_notifications_behind_an_open_transaction_does_not_stretch_the_recheck() {
    let db = TestDb::create().await;
    create_projected(&db.pool).await;
    let (running, first) = start_slow_poll_and_warm(&db).await;
    let handle = running.handle.clone();

    // Each append notifies, wakes the runner and is found held back; twenty such wakes
    // must not grow the recheck towards the 30 s poll: the gate's end notifies nobody.
    let older = open_older_transaction(&db.pool).await;
    let mut last = first;
    for sequence in 1..=20 {
        last = append(&db.pool, "held", sequence).await.expect("append");
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    older.rollback().await.expect("end the older transaction");

    assert!(
        handle
            .wait_for_event(last, Duration::from_secs(5))
            .await
            .expect("wait"),
        "the held-back events were applied soon after the gate opened"
    );
    assert_eq!(assert_effects_match_checkpoint(&db.pool).await, 21);
    running.stop().await;
}

#[tokio::test]
async fn an_event_held_back_before_the_runner_listens_is_applied_without_waiting_for_a_poll() {
    let db = TestDb::create().await;
    create_projected(&db.pool).await;
    // Committed and notified before the runner listens, and behind the gate when it first
    // reads: no notification will ever announce it, only the gate opening.
    let older = open_older_transaction(&db.pool).await;
    let held = append(&db.pool, "held", 1).await.expect("append");
    let slow_poll = RunnerConfig {
        poll_interval: Duration::from_secs(30),
        ..config()
    };
    let running = start(&db.pool, recorder("a"), slow_poll);
    let handle = running.handle.clone();
    eventually("the runner starts", LIMIT, || async {
        handle.status().state == RunnerState::Running
    })
    .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    older.rollback().await.expect("end the older transaction");

    assert!(
        handle
            .wait_for_event(held, Duration::from_secs(5))
            .await
            .expect("wait"),
        "the held-back event was applied once the gate opened"
    );
    assert_eq!(assert_effects_match_checkpoint(&db.pool).await, 1);
    running.stop().await;
}

/// Notes the session's `synchronous_commit` inside each step it applies.
struct SettingProbe {
    seen: Arc<std::sync::Mutex<Vec<String>>>,
}

#[async_trait]
impl Projector for SettingProbe {
    fn name(&self) -> &str {
        NAME
    }

    async fn apply(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        _events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let setting: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&mut **tx)
            .await?;
        self.seen.lock().expect("not poisoned").push(setting);
        Ok(())
    }
}

#[tokio::test]
async fn a_step_commits_without_waiting_for_the_flush_and_only_the_step() {
    let db = TestDb::create().await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let running = start(&db.pool, SettingProbe { seen: seen.clone() }, config());
    let handle = running.handle.clone();
    let last = *append_many(&db.pool, "m", 3)
        .await
        .last()
        .expect("appended");
    assert!(handle.wait_for_event(last, LIMIT).await.expect("wait"));
    let settings = seen.lock().expect("not poisoned").clone();
    assert!(!settings.is_empty());
    assert!(settings.iter().all(|s| s == "off"), "{settings:?}");

    // `SET LOCAL`: every connection of the pool is back to the server's setting.
    let mut connections = Vec::new();
    for _ in 0..4 {
        let mut conn = db.pool.acquire().await.expect("acquire");
        let setting: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&mut *conn)
            .await
            .expect("show");
        assert_eq!(setting, "on");
        connections.push(conn);
    }
    drop(connections);
    running.stop().await;
}
