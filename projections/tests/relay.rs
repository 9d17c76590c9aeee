//! The NATS relay against real PostgreSQL and NATS JetStream: every stored event is
//! published exactly once and in feed order under concurrent writers, a re-send after a
//! crash is dropped by JetStream, only one of two relay runners is active, and the
//! subscriber side (live, durable, backlog) delivers what it should.

mod common;
#[path = "common/relay_support.rs"]
mod relay_support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::{eventually, Rng, TestDb};
use futures::StreamExt as _;
use projections::relay::{
    backlog_after, subject_for, subscribe_durable, subscribe_live, Envelope, NatsRelay, RelayState,
    StartFrom, SubscribeError, HEADER_AGGREGATE_ID, HEADER_AGGREGATE_TYPE, HEADER_CORRELATION_ID,
    HEADER_EVENT_TYPE, HEADER_EVENT_VERSION, HEADER_GLOBAL_POSITION, HEADER_MSG_ID,
    HEADER_SEQUENCE, HEADER_TENANT_ID, HEADER_TX_ID,
};
use projections::{feed, FeedError, Position, Projector, RunnerState};
use relay_support::{
    append_model_event, append_rejection, fast_config, feed_order, nats_url, RunningRelay,
    TestStream,
};
use sqlx::PgPool;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(20);
const TENANTS: [&str; 3] = ["acme", "globex", "a.b"];

/// `writers` tasks, each running `transactions` transactions of 1–3 events on its own
/// aggregates (every 7th rolled back, every 5th adding a rejection record), concurrently,
/// so transaction ids and global positions interleave out of order.
async fn write_concurrently(pool: &PgPool, writers: u64, transactions: u64, seed: u64) {
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(writer + 1));
            let mut next_sequence: HashMap<String, i64> = HashMap::new();
            for n in 0..transactions {
                let aggregate = format!("s{seed}-w{writer}-m{}", rng.below(4));
                let tenant = TENANTS[usize::try_from(rng.below(3)).expect("index")];
                let sequence = next_sequence.entry(aggregate.clone()).or_insert(1);
                let mut tx = pool.begin().await.expect("begin");
                let count = 1 + i64::try_from(rng.below(3)).expect("count");
                for offset in 0..count {
                    append_model_event(&mut *tx, tenant, &aggregate, *sequence + offset)
                        .await
                        .expect("append");
                }
                if n % 5 == 0 {
                    append_rejection(&mut *tx, tenant, &format!("s{seed}-w{writer}-r{n}"))
                        .await
                        .expect("append a rejection");
                }
                if n % 7 == 3 {
                    tx.rollback().await.expect("rollback");
                } else {
                    tx.commit().await.expect("commit");
                    *sequence += count;
                }
                if rng.below(4) == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
}

/// The stream holds every committed event exactly once, in feed order.
async fn assert_exactly_once_in_feed_order(pool: &PgPool, contents: &[Envelope]) {
    let expected: Vec<i64> = feed_order(pool)
        .await
        .iter()
        .map(|(position, _)| position.global_position)
        .collect();
    let got: Vec<i64> = contents.iter().map(|e| e.global_position).collect();
    let unique: HashSet<i64> = got.iter().copied().collect();
    assert_eq!(unique.len(), got.len(), "the stream holds duplicates");
    assert_eq!(got.len(), expected.len(), "events missing or extra");
    assert_eq!(got, expected, "the stream is not in feed order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_is_published_exactly_once_in_feed_order_under_concurrent_writers() {
    let db = TestDb::create().await;
    let stream = TestStream::create(&nats_url()).await;
    let relay = RunningRelay::start(&db.pool, &stream.settings, fast_config()).await;

    write_concurrently(&db.pool, 8, 40, 7).await;
    relay.caught_up(&db.pool, LIMIT).await;

    let contents = stream.contents().await;
    assert_exactly_once_in_feed_order(&db.pool, &contents).await;
    assert_eq!(stream.message_count().await, contents.len() as u64);

    // Each aggregate's events are in sequence order.
    let mut last: HashMap<(String, String), i64> = HashMap::new();
    for envelope in &contents {
        let key = (
            envelope.aggregate_type.clone(),
            envelope.aggregate_id.clone(),
        );
        let previous = last.insert(key, envelope.sequence).unwrap_or(0);
        assert_eq!(envelope.sequence, previous + 1, "{envelope:?}");
    }
    // Rejections carry the tenant of their payload.
    assert!(contents
        .iter()
        .filter(|e| e.event_type == "CommandRejected")
        .all(|e| e.tenant_id.as_deref().is_some_and(|t| TENANTS.contains(&t))));

    let status = relay.relay.status();
    assert_eq!(status.state, RelayState::Connected);
    assert_eq!(status.published, contents.len() as u64);
    assert_eq!(status.failed_publishes, 0);
    assert_eq!(relay.handle.lag().await.expect("lag"), 0);
    relay.stop().await;
}

#[tokio::test]
async fn messages_carry_subject_headers_and_envelope() {
    let db = TestDb::create().await;
    let stream = TestStream::create(&nats_url()).await;
    let position = append_model_event(&db.pool, "a.b c", "m-1", 1)
        .await
        .expect("append");
    let relay = RunningRelay::start(&db.pool, &stream.settings, fast_config()).await;
    relay.caught_up(&db.pool, LIMIT).await;
    relay.stop().await;

    let js_stream = stream
        .js
        .get_stream(&stream.settings.stream)
        .await
        .expect("stream");
    let message = js_stream.get_raw_message(1).await.expect("first message");
    assert_eq!(
        message.subject.as_str(),
        subject_for(
            &stream.settings.subject_prefix,
            Some("a.b c"),
            "ProcessModel",
            "m-1"
        )
    );
    assert!(message
        .subject
        .as_str()
        .ends_with(".a_b_c.ProcessModel.m-1"));
    let header = |name: &'static str| {
        message
            .headers
            .get(async_nats::HeaderName::from_static(name))
            .map(|value| value.as_str().to_owned())
            .unwrap_or_else(|| panic!("header {name} missing"))
    };
    let tx_id = feed::position_of(&db.pool, position)
        .await
        .expect("query")
        .expect("committed")
        .tx_id;
    assert_eq!(header(HEADER_MSG_ID), position.to_string());
    assert_eq!(header(HEADER_GLOBAL_POSITION), position.to_string());
    assert_eq!(header(HEADER_TX_ID), tx_id.to_string());
    assert_eq!(header(HEADER_EVENT_TYPE), "MetadataChanged");
    assert_eq!(header(HEADER_EVENT_VERSION), "1.0");
    assert_eq!(header(HEADER_AGGREGATE_TYPE), "ProcessModel");
    assert_eq!(header(HEADER_AGGREGATE_ID), "m-1");
    assert_eq!(header(HEADER_SEQUENCE), "1");
    assert_eq!(header(HEADER_TENANT_ID), "a.b c");
    assert_eq!(header(HEADER_CORRELATION_ID), "req-m-1-1");

    let envelope: Envelope = serde_json::from_slice(&message.payload).expect("an envelope");
    assert_eq!(envelope.global_position, position);
    assert_eq!(envelope.tenant_id.as_deref(), Some("a.b c"));
    assert_eq!(envelope.correlation_id.as_deref(), Some("req-m-1-1"));
    assert_eq!(envelope.payload["MetadataChanged"]["name"], "n1");
    assert_eq!(envelope.metadata["command"], "UpdateModel");
}

#[tokio::test]
async fn a_resend_after_a_crash_before_the_checkpoint_is_dropped_by_jetstream() {
    let db = TestDb::create().await;
    let stream = TestStream::create(&nats_url()).await;
    for n in 1..=30 {
        append_model_event(&db.pool, "acme", &format!("m{}", n % 4), (n + 3) / 4)
            .await
            .expect("append");
    }

    eventually("every event is readable", LIMIT, || async {
        feed::read_batch(&db.pool, Position::START, 100)
            .await
            .is_ok_and(|events| events.len() == 30)
    })
    .await;

    // A relay publishes the first 20 events and dies before its checkpoint commits.
    let crashed = NatsRelay::new(stream.settings.clone());
    assert!(crashed.wait_ready(LIMIT).await, "{:?}", crashed.status());
    let mut tx = db.pool.begin().await.expect("begin");
    let events = feed::read_batch(&mut *tx, Position::START, 20)
        .await
        .expect("read");
    crashed.apply(&mut tx, &events).await.expect("publish");
    drop(tx);
    drop(crashed);
    assert_eq!(stream.message_count().await, 20);

    // Its successor starts from the old checkpoint and re-sends them.
    let relay = RunningRelay::start(&db.pool, &stream.settings, fast_config()).await;
    relay.caught_up(&db.pool, LIMIT).await;
    let status = relay.relay.status();
    assert_eq!(status.duplicates, 20, "{status:?}");
    assert_eq!(status.published, 10, "{status:?}");
    relay.stop().await;

    assert_eq!(stream.message_count().await, 30);
    assert_exactly_once_in_feed_order(&db.pool, &stream.contents().await).await;
}

#[tokio::test]
async fn a_lost_checkpoint_commit_only_re_sends_what_jetstream_then_drops() {
    let db = TestDb::create().await;
    let stream = TestStream::create(&nats_url()).await;
    for n in 1..=40 {
        append_model_event(&db.pool, "acme", &format!("m{}", n % 5), (n + 4) / 5)
            .await
            .expect("append");
    }
    let relay = RunningRelay::start(&db.pool, &stream.settings, fast_config()).await;
    relay.caught_up(&db.pool, LIMIT).await;
    relay.stop().await;
    assert_eq!(stream.message_count().await, 40);

    // A database crash loses the last checkpoint commits (they did not wait for the WAL
    // flush): the checkpoint is back at the 15th event.
    let order = feed_order(&db.pool).await;
    let (back, _) = order[14];
    sqlx::query(
        "UPDATE projection_checkpoints SET tx_id = $1::text::xid8, global_position = $2 \
         WHERE name = 'nats_relay'",
    )
    .bind(back.tx_id.to_string())
    .bind(back.global_position)
    .execute(&db.pool)
    .await
    .expect("move the checkpoint back");

    let relay = RunningRelay::start(&db.pool, &stream.settings, fast_config()).await;
    relay.caught_up(&db.pool, LIMIT).await;
    let status = relay.relay.status();
    assert_eq!(status.duplicates, 25, "{status:?}");
    assert_eq!(status.published, 0, "{status:?}");
    relay.stop().await;
    assert_eq!(stream.message_count().await, 40);
    assert_exactly_once_in_feed_order(&db.pool, &stream.contents().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_one_of_two_relay_runners_publishes_and_the_other_takes_over() {
    let db = TestDb::create().await;
    let stream = TestStream::create(&nats_url()).await;
    let first = RunningRelay::start(&db.pool, &stream.settings, fast_config()).await;
    let second = RunningRelay::start(&db.pool, &stream.settings, fast_config()).await;

    write_concurrently(&db.pool, 4, 20, 11).await;
    let (active, standby) = {
        let handles = [&first.handle, &second.handle];
        eventually("one runner is active, one stands by", LIMIT, || async {
            let states: Vec<RunnerState> = handles.iter().map(|h| h.status().state).collect();
            states.contains(&RunnerState::Running) && states.contains(&RunnerState::Standby)
        })
        .await;
        if first.handle.status().state == RunnerState::Running {
            (first, second)
        } else {
            (second, first)
        }
    };
    active.caught_up(&db.pool, LIMIT).await;
    assert_eq!(standby.relay.status().published, 0);
    assert_eq!(standby.relay.status().duplicates, 0);

    // The active one stops; the standby takes over and publishes what follows.
    active.stop().await;
    write_concurrently(&db.pool, 4, 20, 12).await;
    standby.caught_up(&db.pool, LIMIT).await;
    assert!(standby.relay.status().published > 0);
    standby.stop().await;

    assert_exactly_once_in_feed_order(&db.pool, &stream.contents().await).await;
}

/// The JetStream behaviour the relay's ordering and crash recovery rely on: a message
/// whose predecessor is missing is refused (never stored ahead of it), and a duplicate is
/// acknowledged as a duplicate before its expectation is checked.
#[tokio::test]
async fn jetstream_refuses_a_message_whose_predecessor_is_missing() {
    use async_nats::jetstream::context::PublishErrorKind;
    use async_nats::jetstream::message::PublishMessage;

    let stream = TestStream::create(&nats_url()).await;
    let subject = format!("{}.t.ProcessModel.m1", stream.settings.subject_prefix);
    let publish = |id: &str, after: Option<&str>| {
        let mut message = PublishMessage::build()
            .payload(id.to_owned().into_bytes().into())
            .message_id(id);
        if let Some(after) = after {
            message = message.expected_last_message_id(after);
        }
        let js = stream.js.clone();
        let subject = subject.clone();
        async move { js.send_publish(subject, message).await?.await }
    };
    assert!(!publish("1", None).await.expect("first").duplicate);
    let overtaking = publish("3", Some("2")).await.expect_err("2 is missing");
    assert_eq!(overtaking.kind(), PublishErrorKind::WrongLastMessageId);
    assert!(!publish("2", Some("1")).await.expect("second").duplicate);
    assert!(!publish("3", Some("2")).await.expect("third").duplicate);
    // A re-send of a stored message: a duplicate, whatever it expects.
    assert!(publish("2", Some("1")).await.expect("re-send").duplicate);
    assert!(publish("1", None).await.expect("re-send").duplicate);
    assert_eq!(stream.message_count().await, 3);
}

/// Takes `count` events from `events`, failing after `LIMIT`.
async fn take(events: &mut projections::relay::LiveEvents, count: usize) -> Vec<Envelope> {
    let mut got = Vec::new();
    while got.len() < count {
        match timeout(LIMIT, events.next()).await {
            Ok(Some(Ok(envelope))) => got.push(envelope),
            other => panic!("expected an event, got {other:?} after {}", got.len()),
        }
    }
    got
}

/// `true` if nothing arrives within `wait`.
async fn quiet(events: &mut projections::relay::LiveEvents, wait: Duration) -> bool {
    match timeout(wait, events.next()).await {
        Err(_) => true,
        Ok(item) => {
            eprintln!("unexpected item: {item:?}");
            false
        }
    }
}

fn positions(envelopes: &[Envelope]) -> Vec<i64> {
    envelopes.iter().map(|e| e.global_position).collect()
}

#[tokio::test]
async fn live_subscriptions_start_where_asked_and_filter_by_exact_tenant() {
    let db = TestDb::create().await;
    let stream = TestStream::create(&nats_url()).await;
    let relay = RunningRelay::start(&db.pool, &stream.settings, fast_config()).await;
    let settings = &stream.settings;
    // "a.b" and "a_b" share the subject token "a_b".
    let mut first = Vec::new();
    for n in 1..=4 {
        first.push(
            append_model_event(&db.pool, "a.b", "m1", n)
                .await
                .expect("append"),
        );
        append_model_event(&db.pool, "a_b", "m2", n)
            .await
            .expect("append");
    }
    relay.caught_up(&db.pool, LIMIT).await;

    let mut beginning = subscribe_live(&stream.js, settings, Some("a.b"), StartFrom::Beginning)
        .await
        .expect("subscribe");
    let mut new = subscribe_live(&stream.js, settings, Some("a.b"), StartFrom::New)
        .await
        .expect("subscribe");
    let mut after = subscribe_live(
        &stream.js,
        settings,
        Some("a.b"),
        StartFrom::AfterPosition(first[1]),
    )
    .await
    .expect("subscribe");
    let mut all = subscribe_live(&stream.js, settings, None, StartFrom::Beginning)
        .await
        .expect("subscribe");

    let mut later = Vec::new();
    for n in 5..=6 {
        later.push(
            append_model_event(&db.pool, "a.b", "m1", n)
                .await
                .expect("append"),
        );
        append_model_event(&db.pool, "a_b", "m2", n)
            .await
            .expect("append");
    }
    relay.caught_up(&db.pool, LIMIT).await;

    let everything: Vec<i64> = first.iter().chain(&later).copied().collect();
    assert_eq!(positions(&take(&mut beginning, 6).await), everything);
    assert_eq!(positions(&take(&mut new, 2).await), later);
    assert_eq!(
        positions(&take(&mut after, 4).await),
        everything[2..].to_vec()
    );
    assert_eq!(take(&mut all, 12).await.len(), 12);
    for events in [&mut beginning, &mut new, &mut after, &mut all] {
        assert!(quiet(events, Duration::from_millis(300)).await);
    }

    let missing = subscribe_live(
        &stream.js,
        settings,
        Some("nobody"),
        StartFrom::AfterPosition(first[0]),
    )
    .await;
    assert!(matches!(missing, Err(SubscribeError::PositionNotFound(_))));
    let mut unknown = subscribe_live(
        &stream.js,
        settings,
        Some("a.b"),
        StartFrom::AfterPosition(999_999),
    )
    .await
    .expect("subscribe");
    assert!(matches!(
        timeout(LIMIT, unknown.next()).await,
        Ok(Some(Err(SubscribeError::PositionNotFound(999_999))))
    ));
    relay.stop().await;
}

#[tokio::test]
async fn a_durable_subscription_resumes_where_it_stopped() {
    let db = TestDb::create().await;
    let stream = TestStream::create(&nats_url()).await;
    let relay = RunningRelay::start(&db.pool, &stream.settings, fast_config()).await;
    let settings = &stream.settings;
    let mut written = Vec::new();
    for n in 1..=5 {
        written.push(
            append_model_event(&db.pool, "acme", "m1", n)
                .await
                .expect("append"),
        );
    }
    relay.caught_up(&db.pool, LIMIT).await;

    let mut tail = subscribe_durable(
        &stream.js,
        settings,
        Some("acme"),
        "tail1",
        StartFrom::Beginning,
    )
    .await
    .expect("subscribe");
    assert_eq!(positions(&take(&mut tail, 5).await), written);
    // Asking for more acknowledges the last one handed out.
    assert!(quiet(&mut tail, Duration::from_millis(300)).await);
    drop(tail);

    let mut more = Vec::new();
    for n in 6..=8 {
        more.push(
            append_model_event(&db.pool, "acme", "m1", n)
                .await
                .expect("append"),
        );
    }
    relay.caught_up(&db.pool, LIMIT).await;
    // `start` is ignored for an existing consumer; it continues after the fifth.
    let mut tail = subscribe_durable(
        &stream.js,
        settings,
        Some("acme"),
        "tail1",
        StartFrom::Beginning,
    )
    .await
    .expect("subscribe again");
    assert_eq!(positions(&take(&mut tail, 3).await), more);
    assert!(quiet(&mut tail, Duration::from_millis(300)).await);

    let mismatch = subscribe_durable(
        &stream.js,
        settings,
        Some("globex"),
        "tail1",
        StartFrom::New,
    )
    .await;
    assert!(matches!(
        mismatch,
        Err(SubscribeError::DurableMismatch { .. })
    ));
    relay.stop().await;
}

#[tokio::test]
async fn the_backlog_is_one_tenants_events_in_feed_order_after_a_position() {
    let db = TestDb::create().await;
    // Two open transactions commit in the opposite order of their global positions.
    let mut older = db.pool.begin().await.expect("begin");
    let low = append_model_event(&mut *older, "acme", "m1", 1)
        .await
        .expect("append");
    let mut newer = db.pool.begin().await.expect("begin");
    let high = append_model_event(&mut *newer, "acme", "m2", 1)
        .await
        .expect("append");
    append_rejection(&mut *newer, "acme", "r1")
        .await
        .expect("append");
    append_model_event(&mut *newer, "globex", "m3", 1)
        .await
        .expect("append");
    newer.commit().await.expect("commit");
    // Held back behind the open older transaction (the feed never skips it).
    assert!(backlog_after(&db.pool, "acme", None, 10)
        .await
        .expect("backlog")
        .is_empty());
    older.commit().await.expect("commit");

    // Transactions of other tests (xids are cluster-wide) may hold the feed back a moment.
    eventually("the backlog is readable", LIMIT, || async {
        backlog_after(&db.pool, "acme", None, 10)
            .await
            .is_ok_and(|events| events.len() == 3)
    })
    .await;
    let all = backlog_after(&db.pool, "acme", None, 10)
        .await
        .expect("backlog");
    let order: Vec<(i64, &str)> = all
        .iter()
        .map(|e| (e.global_position, e.event_type.as_str()))
        .collect();
    assert_eq!(order[0], (low, "MetadataChanged"));
    assert_eq!(order[1], (high, "MetadataChanged"));
    assert_eq!(order[2].1, "CommandRejected");
    assert_eq!(order.len(), 3);

    // After `low` (feed order), not "global position greater than low".
    let after_low = backlog_after(&db.pool, "acme", Some(low), 10)
        .await
        .expect("backlog");
    assert_eq!(positions(&after_low), positions(&all[1..]));
    let limited = backlog_after(&db.pool, "acme", Some(low), 1)
        .await
        .expect("backlog");
    assert_eq!(positions(&limited), vec![high]);
    assert!(matches!(
        backlog_after(&db.pool, "acme", Some(987_654), 10).await,
        Err(FeedError::UnknownEvent(987_654))
    ));
}

/// Throughput on this machine; run with `--ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement, not a test"]
async fn relay_throughput() {
    let db = TestDb::create().await;
    let stream = TestStream::create(&nats_url()).await;
    let count: i64 = 20_000;
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT 'ProcessModel', 'm' || (n % 500), n / 500 + 1, 'MetadataChanged', '1.0', \
                jsonb_build_object('MetadataChanged', jsonb_build_object('name', repeat('x', 200))), \
                jsonb_build_object('tenant_id', 't' || (n % 7), 'user_id', 'u', 'correlation_id', 'c' || n) \
         FROM generate_series(0, $1 - 1) AS n",
    )
    .bind(count)
    .execute(&db.pool)
    .await
    .expect("insert");
    for batch_size in [100, 500] {
        let settings = relay_support::unique_settings(&nats_url());
        sqlx::query("DELETE FROM projection_checkpoints")
            .execute(&db.pool)
            .await
            .expect("reset");
        let started = Instant::now();
        let config = projections::RunnerConfig {
            batch_size,
            ..fast_config()
        };
        let relay = RunningRelay::start(&db.pool, &settings, config).await;
        relay.caught_up(&db.pool, Duration::from_secs(120)).await;
        let elapsed = started.elapsed();
        let status = relay.relay.status();
        relay.stop().await;
        println!(
            "batch {batch_size}: {count} events in {elapsed:?} = {:.0} events/s ({status:?})",
            count as f64 / elapsed.as_secs_f64()
        );
        let _ = stream.js.delete_stream(&settings.stream).await;
    }
}
