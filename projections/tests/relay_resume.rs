//! The SSE seam against real PostgreSQL and NATS: `resume_stream` sends a tenant's events
//! after `Last-Event-ID` from the PostgreSQL backlog and then live from NATS, with events
//! written before, during and after the subscription and the relay lagging behind, each
//! exactly once and in feed order.

mod common;
#[path = "common/relay_support.rs"]
mod relay_support;

use std::time::Duration;

use common::TestDb;
use futures::StreamExt as _;
use projections::relay::{resume_stream, Envelope, ResumeError, ResumeEvents, ResumeOptions};
use projections::Position;
use relay_support::{
    append_model_event, append_rejection, fast_config, feed_order, nats_url, RunningRelay,
    TestStream,
};
use sqlx::PgPool;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(20);
/// Shares its subject token (`ac_me`) with the tenant `ac_me`: the envelope decides.
const TENANT: &str = "ac.me";

/// `each` events in each of `writers` concurrent tasks (one transaction each, every fifth
/// with a rejection record of [`TENANT`]), on aggregates named after `batch`, for
/// [`TENANT`], `ac_me` (same subject token) and `globex`.
async fn write(pool: &PgPool, batch: &str, writers: usize, each: i64) {
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let pool = pool.clone();
        let aggregate = format!("{batch}-w{writer}");
        tasks.push(tokio::spawn(async move {
            for sequence in 1..=each {
                let tenant = match sequence % 4 {
                    0 => "globex",
                    1 => "ac_me",
                    _ => TENANT,
                };
                let mut tx = pool.begin().await.expect("begin");
                append_model_event(&mut *tx, tenant, &aggregate, sequence)
                    .await
                    .expect("append");
                if sequence % 5 == 0 {
                    append_rejection(&mut *tx, TENANT, &format!("{aggregate}-r{sequence}"))
                        .await
                        .expect("append a rejection");
                }
                tx.commit().await.expect("commit");
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
}

/// The tenant's committed events after `after` (feed order).
async fn expected_after(pool: &PgPool, after: Position) -> Vec<i64> {
    feed_order(pool)
        .await
        .into_iter()
        .filter(|(position, tenant)| *position > after && tenant.as_deref() == Some(TENANT))
        .map(|(position, _)| position.global_position)
        .collect()
}

async fn next_event(events: &mut ResumeEvents) -> Envelope {
    match timeout(LIMIT, events.next()).await {
        Ok(Some(Ok(envelope))) => envelope,
        other => panic!("expected an event, got {other:?}"),
    }
}

async fn quiet(events: &mut ResumeEvents) -> bool {
    timeout(Duration::from_millis(300), events.next())
        .await
        .is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resuming_across_backlog_and_live_loses_and_repeats_nothing() {
    let db = TestDb::create().await;
    let stream = TestStream::create(&nats_url()).await;
    let relay = RunningRelay::start(&db.pool, &stream.settings, fast_config()).await;

    // Before: the client saw the tenant's first ten events.
    write(&db.pool, "before", 4, 12).await;
    relay.caught_up(&db.pool, LIMIT).await;
    let seen = expected_after(&db.pool, Position::START).await;
    let last_seen = seen[9];
    let last_seen_position = projections::feed::position_of(&db.pool, last_seen)
        .await
        .expect("query")
        .expect("committed");

    // The relay falls behind: these are in PostgreSQL only when the client resumes.
    relay.stop().await;
    write(&db.pool, "lagging", 4, 8).await;

    let options = ResumeOptions {
        page_size: 7,
        ..ResumeOptions::default()
    };
    let mut events = resume_stream(
        db.pool.clone(),
        stream.js.clone(),
        &stream.settings,
        TENANT,
        Some(last_seen),
        options,
    )
    .await
    .expect("resume");

    // During: writers and the relay run while the client reads.
    let during = {
        let pool = db.pool.clone();
        tokio::spawn(async move { write(&pool, "during", 4, 15).await })
    };
    let relay = RunningRelay::start(&db.pool, &stream.settings, fast_config()).await;
    let mut got = Vec::new();
    for _ in 0..20 {
        got.push(next_event(&mut events).await);
    }
    during.await.expect("writers");

    // After: more events once the client is live.
    write(&db.pool, "after", 2, 6).await;
    relay.caught_up(&db.pool, LIMIT).await;

    let expected = expected_after(&db.pool, last_seen_position).await;
    while got.len() < expected.len() {
        got.push(next_event(&mut events).await);
    }
    let positions: Vec<i64> = got.iter().map(|e| e.global_position).collect();
    assert_eq!(positions, expected, "lost, repeated or out of feed order");
    assert!(got.iter().all(|e| e.tenant_id.as_deref() == Some(TENANT)));

    // Nothing else comes; the next event is the next one written.
    let sentinel = append_model_event(&db.pool, TENANT, "sentinel", 1)
        .await
        .expect("append");
    relay.caught_up(&db.pool, LIMIT).await;
    assert_eq!(next_event(&mut events).await.global_position, sentinel);
    assert!(quiet(&mut events).await);
    relay.stop().await;
}

#[tokio::test]
async fn without_last_event_id_only_new_events_come() {
    let db = TestDb::create().await;
    let stream = TestStream::create(&nats_url()).await;
    let relay = RunningRelay::start(&db.pool, &stream.settings, fast_config()).await;
    write(&db.pool, "old", 1, 5).await;
    relay.caught_up(&db.pool, LIMIT).await;

    let mut events = resume_stream(
        db.pool.clone(),
        stream.js.clone(),
        &stream.settings,
        TENANT,
        None,
        ResumeOptions::default(),
    )
    .await
    .expect("resume");
    let before = relay_support::head(&db.pool).await;
    write(&db.pool, "new", 1, 6).await;
    relay.caught_up(&db.pool, LIMIT).await;
    let expected = expected_after(&db.pool, before).await;
    let mut got = Vec::new();
    while got.len() < expected.len() {
        got.push(next_event(&mut events).await.global_position);
    }
    assert_eq!(got, expected);
    assert!(quiet(&mut events).await);

    let unknown = resume_stream(
        db.pool.clone(),
        stream.js.clone(),
        &stream.settings,
        TENANT,
        Some(987_654),
        ResumeOptions::default(),
    )
    .await;
    assert!(matches!(
        unknown,
        Err(ResumeError::UnknownLastEventId(987_654))
    ));
    relay.stop().await;
}

#[tokio::test]
async fn a_client_too_far_behind_is_cut_off_instead_of_buffered() {
    let db = TestDb::create().await;
    let stream = TestStream::create(&nats_url()).await;
    let relay = RunningRelay::start(&db.pool, &stream.settings, fast_config()).await;
    let mut events = resume_stream(
        db.pool.clone(),
        stream.js.clone(),
        &stream.settings,
        TENANT,
        None,
        ResumeOptions {
            max_pending: 5,
            ..ResumeOptions::default()
        },
    )
    .await
    .expect("resume");
    for sequence in 1..=20 {
        append_model_event(&db.pool, TENANT, "m", sequence)
            .await
            .expect("append");
    }
    relay.caught_up(&db.pool, LIMIT).await;
    match timeout(LIMIT, events.next()).await {
        Ok(Some(Err(ResumeError::SlowConsumer { pending, limit }))) => {
            assert!(pending > limit);
            assert_eq!(limit, 5);
        }
        other => panic!("expected a slow-consumer error, got {other:?}"),
    }
    assert!(matches!(timeout(LIMIT, events.next()).await, Ok(None)));
    relay.stop().await;
}
