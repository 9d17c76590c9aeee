//! The fan-out scenario (`--scenarios fanout`): the server restarted with NATS on the seeded
//! database, so its relay first catches up the whole backlog (relay throughput in events/s),
//! then creates at a fixed rate (`--fanout-rate`, 200/s by default) while a NATS subscriber
//! and an SSE client of the same tenant record when each model's `ModelCreated` arrives.
//! Latency = arrival − the command's HTTP response. An event can arrive before the response
//! (the relay runs beside the read-your-writes wait): those count as 0 ms and are reported.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage, stream};
use async_nats::HeaderMap;
use futures::StreamExt as _;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

/// When each model's `ModelCreated` arrived, by aggregate id.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;
/// When each command was sent and answered, by aggregate id.
type Commands = Arc<Mutex<HashMap<String, (Instant, Instant)>>>;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub received: u64,
    pub missing: u64,
    /// Arrived before the command's response (counted as 0 ms).
    pub before_response: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// From the moment the command was sent instead (the whole path: command, append,
    /// relay or bus, subscriber).
    pub p50_from_request_ms: f64,
    pub p99_from_request_ms: f64,
}

/// The ceiling the relay is compared with: a bare async-nats JetStream publisher, no
/// PostgreSQL, the relay's stream configuration, subject shape, headers, body size and ack
/// window, one pre-built message per event.
#[derive(Debug, Clone, Serialize)]
pub struct RawBaseline {
    pub variant: String,
    pub messages: u64,
    pub body_bytes: usize,
    pub ack_window: usize,
    /// Publisher's wall clock: first publish → last acknowledgement.
    pub seconds: f64,
    pub events_per_sec: f64,
    /// The stream's own timing (first → last stored message), as for the relay.
    pub stream_events_per_sec: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    pub backlog_events: i64,
    /// Restart ready → checkpoint at the end of the log (polled every 50 ms).
    pub relay_catch_up_seconds: f64,
    pub relay_events_per_sec: f64,
    /// The relay's catch-up timed by the stream (first → last stored message).
    pub relay_stream_events_per_sec: f64,
    /// Stored bytes per message in the relay's stream (subject, headers and body).
    pub relay_stream_bytes_per_message: f64,
    pub raw: Vec<RawBaseline>,
    /// Relay (stream-timed) ÷ the raw publisher with the relay's headers (stream-timed).
    pub ratio_relay_to_raw: Option<f64>,
    pub load_average_before: String,
    pub commands: u64,
    pub command_errors: u64,
    pub rate: f64,
    pub nats: Latency,
    pub sse: Latency,
}

/// The NATS settings the server is restarted with: a stream and subject prefix of this run.
pub fn server_env(nats_url: &str) -> (Vec<(String, String)>, String) {
    let run = Uuid::new_v4().simple().to_string();
    let prefix = format!("fuibench.{run}");
    let env = vec![
        ("NATS_URL".to_owned(), nats_url.to_owned()),
        ("APP_NATS__STREAM".to_owned(), format!("FUI_BENCH_{run}")),
        ("APP_NATS__SUBJECT_PREFIX".to_owned(), prefix.clone()),
    ];
    (env, prefix)
}

/// Waits until the relay's checkpoint is at the last event in feed order; the seconds it
/// took from `since`. Two index lookups per poll (a `count(*)` of the events after the
/// checkpoint would scan the backlog every 50 ms and take CPU from the relay it measures).
pub async fn wait_relay_caught_up(
    pool: &sqlx::PgPool,
    since: Instant,
    limit: Duration,
) -> anyhow::Result<f64> {
    loop {
        let caught_up: Option<bool> = sqlx::query_scalar(
            "SELECT (c.tx_id, c.global_position) >= (e.tx_id, e.global_position)
               FROM projection_checkpoints c,
                    (SELECT tx_id, global_position FROM events
                      ORDER BY tx_id DESC, global_position DESC LIMIT 1) e
              WHERE c.name = 'nats_relay'",
        )
        .fetch_optional(pool)
        .await?;
        if caught_up == Some(true) {
            return Ok(since.elapsed().as_secs_f64());
        }
        anyhow::ensure!(
            since.elapsed() < limit,
            "the relay did not catch up in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How fast `stream` took in its messages: (messages − 1) ÷ (last − first message's
/// timestamp), both stamped by the server as it stored them. Independent of when the
/// measuring side looked, so the relay and the raw publisher are timed alike.
pub async fn stream_ingest(
    js: &jetstream::Context,
    stream: &str,
) -> anyhow::Result<(u64, u64, f64)> {
    let info = js.get_stream(stream).await?.info().await?.clone();
    let state = info.state;
    let seconds = (state.last_timestamp - state.first_timestamp).as_seconds_f64();
    Ok((state.messages, state.bytes, seconds))
}

/// `global_position`, `aggregate_type`, `aggregate_id`, `sequence`, `event_type`,
/// `event_version`, `payload`, `metadata`.
type SampleRow = (i64, String, String, i64, String, String, Value, Value);

/// A message body like the relay's: the envelope of the last stored event.
pub async fn sample_body(pool: &sqlx::PgPool) -> anyhow::Result<Vec<u8>> {
    let row: Option<SampleRow> = sqlx::query_as(
        "SELECT global_position, aggregate_type, aggregate_id, sequence, event_type,
                event_version, payload, metadata
           FROM events ORDER BY global_position DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    let (position, aggregate_type, aggregate_id, sequence, event_type, version, payload, metadata) =
        row.context("no event to copy the body of")?;
    let envelope = json!({
        "globalPosition": position,
        "aggregateType": aggregate_type,
        "aggregateId": aggregate_id,
        "sequence": sequence,
        "eventType": event_type,
        "eventVersion": version,
        "tenantId": metadata.get("tenant_id"),
        "correlationId": metadata.get("correlation_id"),
        "recordedAt": "2026-12-03T06:00:00.123456Z",
        "payload": payload,
        "metadata": metadata,
    });
    Ok(serde_json::to_vec(&envelope)?)
}

/// Publishes `count` messages to a stream of its own configured as the relay configures
/// its stream (file storage, limits, discard old, 5 min duplicate window), on subjects of
/// the relay's shape (one per aggregate), each with the relay's headers and
/// `Nats-Msg-Id` = its number, at most `window` unacknowledged (the relay's JetStream
/// context settings). With `chain`, every message but each `batch`-th also carries
/// `Nats-Expected-Last-Msg-Id` = the previous one's id, as the relay's did. The stream is
/// deleted afterwards.
pub async fn raw_jetstream(
    nats_url: &str,
    body: &[u8],
    count: u64,
    window: usize,
    chain: Option<u64>,
) -> anyhow::Result<RawBaseline> {
    let client = async_nats::connect(nats_url)
        .await
        .context("cannot connect to NATS")?;
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(2))
        .ack_timeout(Duration::from_secs(2))
        .max_ack_inflight(window.max(1) * 2)
        .backpressure_on_inflight(true)
        .build(client);
    let run = Uuid::new_v4().simple().to_string();
    let name = format!("FUI_BENCH_RAW_{run}");
    let prefix = format!("fuibench.raw{run}");
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{prefix}.>")],
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        storage: stream::StorageType::File,
        max_age: Duration::from_secs(7 * 24 * 3600),
        max_bytes: 1024 * 1024 * 1024,
        num_replicas: 1,
        duplicate_window: Duration::from_secs(300),
        ..Default::default()
    })
    .await?;
    let result = async {
        let started = Instant::now();
        let mut in_flight: std::collections::VecDeque<PublishAckFuture> =
            std::collections::VecDeque::with_capacity(window);
        for n in 1..=count {
            if in_flight.len() >= window.max(1) {
                if let Some(ack) = in_flight.pop_front() {
                    ack.await?;
                }
            }
            let id = n.to_string();
            let aggregate = Uuid::from_u128(u128::from(n)).to_string();
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", id.as_str());
            headers.insert("Flowable-Global-Position", id.as_str());
            headers.insert("Flowable-Tx-Id", "7000000123");
            headers.insert("Flowable-Event-Type", "ModelCreated");
            headers.insert("Flowable-Event-Version", "1.0");
            headers.insert("Flowable-Aggregate-Type", "ProcessModel");
            headers.insert("Flowable-Aggregate-Id", aggregate.as_str());
            headers.insert("Flowable-Sequence", "1");
            headers.insert("Flowable-Tenant-Id", "bench");
            headers.insert("Flowable-Correlation-Id", id.as_str());
            headers.insert("Content-Type", "application/json");
            let mut publish = PublishMessage::build()
                .payload(body.to_vec().into())
                .headers(headers);
            if let Some(batch) = chain {
                if (n - 1) % batch.max(1) != 0 {
                    publish = publish.expected_last_message_id((n - 1).to_string());
                }
            }
            let subject = format!("{prefix}.bench.ProcessModel.{aggregate}");
            in_flight.push_back(js.send_publish(subject, publish).await?);
        }
        while let Some(ack) = in_flight.pop_front() {
            ack.await?;
        }
        let seconds = started.elapsed().as_secs_f64();
        let (messages, _, stream_seconds) = stream_ingest(&js, &name).await?;
        anyhow::ensure!(messages == count, "stored {messages} of {count}");
        Ok(RawBaseline {
            variant: match chain {
                Some(batch) => {
                    format!("relay headers + expected-last-msg-id chain (batches of {batch})")
                }
                None => "relay headers (Nats-Msg-Id, no expected-last-msg-id)".to_owned(),
            },
            messages: count,
            body_bytes: body.len(),
            ack_window: window,
            seconds,
            events_per_sec: count as f64 / seconds.max(1e-9),
            stream_events_per_sec: count.saturating_sub(1) as f64 / stream_seconds.max(1e-9),
        })
    }
    .await;
    let _ = js.delete_stream(&name).await;
    result
}

/// The measured part: subscribers up, creates at `rate` for `duration`, then the latencies.
pub async fn measure(
    client: &reqwest::Client,
    base: &str,
    bearer: &str,
    nats_url: &str,
    prefix: &str,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<(u64, u64, Latency, Latency)> {
    let nats_arrivals: Arrivals = Arc::default();
    let sse_arrivals: Arrivals = Arc::default();
    let nats = async_nats::connect(nats_url)
        .await
        .context("cannot connect to NATS")?;
    let mut subscription = nats.subscribe(format!("{prefix}.>")).await?;
    let nats_task = {
        let arrivals = nats_arrivals.clone();
        tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                let now = Instant::now();
                let header = |name: &str| {
                    message
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(name))
                        .map(|v| v.as_str().to_owned())
                };
                if header("Flowable-Event-Type").as_deref() == Some("ModelCreated") {
                    if let Some(id) = header("Flowable-Aggregate-Id") {
                        lock(&arrivals).entry(id).or_insert(now);
                    }
                }
            }
        })
    };
    let response = client
        .get(format!("{base}/api/v1/events/stream"))
        .header("authorization", bearer)
        .timeout(duration + Duration::from_secs(60))
        .send()
        .await?;
    anyhow::ensure!(response.status() == 200, "SSE: {}", response.status());
    let sse_task = {
        let arrivals = sse_arrivals.clone();
        tokio::spawn(read_sse(response, arrivals))
    };

    let responded: Commands = Arc::default();
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let nonce = Uuid::new_v4().simple().to_string();
    let mut sends = Vec::new();
    let mut n = 0u64;
    while started.elapsed() < duration {
        let due = started + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        let (client, responded, errors) = (client.clone(), responded.clone(), errors.clone());
        let url = format!("{base}/api/v1/process-models");
        let bearer = bearer.to_owned();
        let key = format!("fan{}{n}", &nonce[..8]);
        sends.push(tokio::spawn(async move {
            let sent = Instant::now();
            let result = client
                .post(url)
                .header("authorization", bearer)
                .json(&json!({"key": key, "name": "Fan-out"}))
                .send()
                .await;
            let now = Instant::now();
            let id = match result {
                Ok(r) if r.status() == 201 => r
                    .json::<Value>()
                    .await
                    .ok()
                    .and_then(|v| v["id"].as_str().map(str::to_owned)),
                _ => None,
            };
            match id {
                Some(id) => {
                    lock(&responded).insert(id, (sent, now));
                }
                None => {
                    errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
        n += 1;
    }
    for send in sends {
        send.await?;
    }
    // Stragglers: give the fan-out a moment after the last response.
    tokio::time::sleep(Duration::from_secs(2)).await;
    nats_task.abort();
    sse_task.abort();
    let responded = lock(&responded).clone();
    let nats = latency(&responded, &lock(&nats_arrivals));
    let sse = latency(&responded, &lock(&sse_arrivals));
    Ok((
        responded.len() as u64,
        errors.load(std::sync::atomic::Ordering::Relaxed),
        nats,
        sse,
    ))
}

async fn read_sse(mut response: reqwest::Response, arrivals: Arrivals) {
    let mut buffer = String::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let now = Instant::now();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            if let Ok(event) = serde_json::from_str::<Value>(&data) {
                if event["eventType"] == "ModelCreated" {
                    if let Some(id) = event["aggregateId"].as_str() {
                        lock(&arrivals).entry(id.to_owned()).or_insert(now);
                    }
                }
            }
        }
    }
}

fn latency(
    responded: &HashMap<String, (Instant, Instant)>,
    arrived: &HashMap<String, Instant>,
) -> Latency {
    let (Ok(mut histogram), Ok(mut from_request)) =
        (Histogram::<u64>::new(3), Histogram::<u64>::new(3))
    else {
        return Latency::default();
    };
    let (mut missing, mut before) = (0, 0);
    for (id, (sent, response)) in responded {
        match arrived.get(id) {
            None => missing += 1,
            Some(arrival) => {
                let whole = arrival.saturating_duration_since(*sent).as_micros();
                let _ = from_request.record(u64::try_from(whole).unwrap_or(u64::MAX));
                let micros = match arrival.checked_duration_since(*response) {
                    Some(after) => after.as_micros(),
                    None => {
                        before += 1;
                        0
                    }
                };
                let _ = histogram.record(u64::try_from(micros).unwrap_or(u64::MAX));
            }
        }
    }
    let ms = |micros: u64| micros as f64 / 1000.0;
    Latency {
        received: histogram.len(),
        missing,
        before_response: before,
        p50_ms: ms(histogram.value_at_quantile(0.50)),
        p99_ms: ms(histogram.value_at_quantile(0.99)),
        max_ms: ms(histogram.max()),
        p50_from_request_ms: ms(from_request.value_at_quantile(0.50)),
        p99_from_request_ms: ms(from_request.value_at_quantile(0.99)),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FanoutReport {
    pub fn print(&self) {
        println!();
        println!(
            "fan-out: relay caught up {} events in {:.1} s ({:.0} events/s); {} creates at {:.0}/s ({} errors)",
            self.backlog_events,
            self.relay_catch_up_seconds,
            self.relay_events_per_sec,
            self.commands,
            self.rate,
            self.command_errors
        );
        println!(
            "  relay by the stream's clock: {:.0} events/s, {:.0} bytes/message (load average before: {})",
            self.relay_stream_events_per_sec, self.relay_stream_bytes_per_message, self.load_average_before
        );
        for raw in &self.raw {
            println!(
                "  raw JetStream publisher, {}: {:.0} events/s ({:.0} by the stream's clock; {} messages, {} B body, {} acks in flight)",
                raw.variant,
                raw.events_per_sec,
                raw.stream_events_per_sec,
                raw.messages,
                raw.body_bytes,
                raw.ack_window
            );
        }
        if let Some(ratio) = self.ratio_relay_to_raw {
            println!("  ratio relay / raw JetStream (stream clock): {ratio:.2}");
        }
        for (name, l) in [("NATS subscriber", &self.nats), ("SSE client", &self.sse)] {
            println!(
                "  response → {name}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} received, {} missing, {} before the response); request → {name}: p50 {:.1} ms, p99 {:.1} ms",
                l.p50_ms, l.p99_ms, l.max_ms, l.received, l.missing, l.before_response,
                l.p50_from_request_ms, l.p99_from_request_ms
            );
        }
    }
}
