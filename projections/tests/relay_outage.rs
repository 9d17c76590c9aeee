//! The relay against a private `nats-server` that is killed mid-load and started again on
//! the same port and store: commands and other feed consumers carry on, the relay reports
//! itself degraded, and afterwards it catches up with every event exactly once.

mod common;
#[path = "common/relay_support.rs"]
mod relay_support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::{eventually, TestDb};
use projections::relay::{connect, RelayState};
use projections::{feed, ProjectionError, Projector, ProjectorRunner, StoredEvent};
use relay_support::{
    append_model_event, fast_config, feed_order, stream_contents, unique_settings, PrivateNats,
    RunningRelay,
};
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::watch;

const LIMIT: Duration = Duration::from_secs(20);

/// A second feed consumer that only counts: it must keep up while NATS is down.
struct Counter(Arc<AtomicUsize>);

#[async_trait]
impl Projector for Counter {
    fn name(&self) -> &str {
        "counter"
    }

    async fn apply(
        &self,
        _tx: &mut Transaction<'_, Postgres>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        self.0.fetch_add(events.len(), Ordering::SeqCst);
        Ok(())
    }
}

/// `writers` tasks appending `each` events (one per transaction) with a short pause.
fn spawn_writers(pool: &PgPool, writers: usize, each: i64) -> Vec<tokio::task::JoinHandle<()>> {
    (0..writers)
        .map(|writer| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for sequence in 1..=each {
                    let tenant = if sequence % 3 == 0 { "globex" } else { "acme" };
                    append_model_event(&pool, tenant, &format!("w{writer}"), sequence)
                        .await
                        .expect("append while NATS is down or up");
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_down_mid_load_delays_the_fan_out_and_loses_nothing() {
    let db = TestDb::create().await;
    let mut nats = PrivateNats::start().await;
    let settings = unique_settings(&nats.url());
    let relay = RunningRelay::start(&db.pool, &settings, fast_config()).await;
    assert!(
        relay.relay.wait_ready(LIMIT).await,
        "{:?}",
        relay.relay.status()
    );

    let counted = Arc::new(AtomicUsize::new(0));
    let counter = ProjectorRunner::new(
        db.pool.clone(),
        Arc::new(Counter(counted.clone())),
        fast_config(),
    );
    let counter_handle = counter.handle();
    let (stop_counter, mut counter_stopped) = watch::channel(false);
    let counter_task = tokio::spawn(counter.run(async move {
        let _ = counter_stopped.wait_for(|stop| *stop).await;
    }));

    let writers = spawn_writers(&db.pool, 3, 300);
    eventually("the relay has published some events", LIMIT, || async {
        relay.relay.status().published >= 60
    })
    .await;

    nats.kill();
    println!("NATS killed after {:?}", relay.relay.status());
    eventually("the relay reports itself degraded", LIMIT, || async {
        relay.relay.status().state == RelayState::Degraded
    })
    .await;
    assert!(!relay.relay.status_handle().is_connected());

    // NATS is down: a command still commits, and another consumer still gets it.
    let started = Instant::now();
    let marker = append_model_event(&db.pool, "acme", "marker", 1)
        .await
        .expect("a command commits while NATS is down");
    assert!(
        counter_handle
            .wait_for_event(marker, LIMIT)
            .await
            .expect("the marker exists"),
        "another feed consumer stalled while NATS was down"
    );
    println!(
        "while NATS was down, another consumer processed a new event {:?} after it was written",
        started.elapsed()
    );
    // Down for a while, with writers going on.
    eventually("events pile up for the relay", LIMIT, || async {
        relay.handle.lag().await.is_ok_and(|lag| lag >= 150)
    })
    .await;
    assert_eq!(relay.relay.status().state, RelayState::Degraded);

    println!(
        "NATS restarted; relay lag {:?}, {:?}",
        relay.handle.lag().await,
        relay.relay.status()
    );
    nats.restart().await;
    for writer in writers {
        writer.await.expect("writer");
    }
    relay.caught_up(&db.pool, LIMIT).await;
    let status = relay.relay.status();
    println!("caught up: {status:?}");
    assert_eq!(status.state, RelayState::Connected, "{status:?}");
    assert!(
        status.failed_publishes + status.refused_unavailable > 0,
        "{status:?}"
    );

    // Everything arrived, once, in feed order.
    let client = connect(&settings, "outage test reader")
        .await
        .expect("connect");
    let js = settings.jetstream(client);
    let contents = stream_contents(&js, &settings).await;
    let expected: Vec<i64> = feed_order(&db.pool)
        .await
        .iter()
        .map(|(position, _)| position.global_position)
        .collect();
    let got: Vec<i64> = contents.iter().map(|e| e.global_position).collect();
    assert_eq!(got.iter().copied().collect::<HashSet<_>>().len(), got.len());
    assert_eq!(got, expected);
    assert_eq!(expected.len(), 3 * 300 + 1);
    assert_eq!(counted.load(Ordering::SeqCst), expected.len());
    assert_eq!(
        feed::count_after(
            &db.pool,
            relay.handle.checkpoint().await.expect("checkpoint")
        )
        .await
        .expect("lag"),
        0
    );

    relay.stop().await;
    stop_counter.send(true).expect("counter is listening");
    counter_task.await.expect("counter task");
}
