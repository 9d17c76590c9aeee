//! The relay: a [`Projector`] that publishes every stored event to JetStream and lets the
//! runner advance its checkpoint only after every event of the batch is acknowledged.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream;
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::{Client, Event};
use async_trait::async_trait;
use sqlx::{Postgres, Transaction};
use tokio::sync::OnceCell;
use tokio::time::{sleep, timeout, Instant};

use crate::error::{chain, ProjectionError};
use crate::event::StoredEvent;
use crate::runner::Projector;

use super::envelope::Outgoing;
use super::error::RelayError;
use super::settings::{ensure_stream, RelaySettings};
use super::status::{RelayState, RelayStatus, RelayStatusHandle, Shared};

/// The relay's checkpoint name and advisory lock. Never rename it: a renamed relay would
/// publish the whole log again (JetStream drops only what is within its duplicate window).
pub const RELAY_NAME: &str = "nats_relay";

/// The largest message when the server has not told its limit yet (NATS's default).
const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;
/// The first pause between health probes; doubles up to `reconnect_max_delay`.
const PROBE_INITIAL_DELAY: Duration = Duration::from_millis(50);

/// Publishes every stored event to the JetStream stream of its [`RelaySettings`], run by
/// a [`crate::ProjectorRunner`] (one active replica, fail-over via the advisory lock).
///
/// - Subject `<prefix>.<tenant>.<aggregate_type>.<aggregate_id>`, body the
///   [`super::Envelope`], headers as in [`super::envelope`], `Nats-Msg-Id` = global
///   position.
/// - Pipelined: up to `max_outstanding_acks` publishes await their acknowledgement at once;
///   `apply` returns `Ok` only when every event of the batch is acknowledged, so the runner
///   checkpoints nothing that JetStream has not stored. On any failure the batch is rolled
///   back and retried; re-sent events within the duplicate window are dropped by
///   JetStream.
/// - Order: within a batch each message after the first carries
///   `Nats-Expected-Last-Msg-Id` = the previous event's global position, so if one message
///   is lost (a reconnect mid-batch) every later one is refused rather than stored ahead of
///   it: the stream holds events in feed order, and each aggregate's events in sequence
///   order. Nothing else may publish on the stream's subjects (a foreign message breaks
///   the chain: batches then fail and are retried one event at a time).
/// - NATS down or slow never blocks a command (commands only write PostgreSQL). While the
///   relay is [`RelayState::Degraded`] it refuses batches at once (the runner's batch
///   transaction holds a transaction id, which would hold back every feed reader while it
///   waited); a background probe (stream create-or-update) marks it connected again.
///   Size the runner's `retry_max` to a few seconds: refusals are cheap, and it bounds how
///   long after recovery the relay resumes.
/// - Connects lazily on first use and reconnects by itself. On every replica, call
///   [`Self::wait_ready`] (bounded) at start-up, before starting the runner: a batch
///   refused while the first connection is under way makes the runner retry that batch
///   one event per transaction, and a standby replica's relay (whose runner never applies
///   a batch) would otherwise never connect, so its status would not show NATS health.
pub struct NatsRelay {
    inner: Arc<Inner>,
}

struct Inner {
    settings: RelaySettings,
    shared: Arc<Shared>,
    conn: OnceCell<Connection>,
    created: Instant,
}

struct Connection {
    client: Client,
    js: jetstream::Context,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
    }
}

impl NatsRelay {
    /// A relay for `settings`. Nothing connects until [`Self::start`] or the first batch.
    pub fn new(settings: RelaySettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                shared: Arc::new(Shared::new()),
                conn: OnceCell::new(),
                created: Instant::now(),
            }),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &RelaySettings {
        &self.inner.settings
    }

    /// Starts connecting in the background (and the health probe that creates or updates
    /// the stream). Returns at once; fails only for an invalid URL. Idempotent.
    pub async fn start(&self) -> Result<(), RelayError> {
        self.connection().await.map(|_| ())
    }

    /// Waits until the relay can publish, at most `limit`; `true` if it can.
    pub async fn wait_ready(&self, limit: Duration) -> bool {
        if self.start().await.is_err() {
            return false;
        }
        let deadline = Instant::now() + limit;
        loop {
            if self.inner.shared.ready.load(Ordering::SeqCst) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            sleep(Duration::from_millis(10)).await;
        }
    }

    /// The current health and counters.
    pub fn status(&self) -> RelayStatus {
        self.inner.shared.snapshot()
    }

    /// A handle on the health and counters, for readiness and metrics.
    pub fn status_handle(&self) -> RelayStatusHandle {
        RelayStatusHandle {
            shared: self.inner.shared.clone(),
        }
    }

    /// The JetStream context the relay publishes with, once connected (for tests and
    /// tools that share the relay's connection).
    pub fn jetstream(&self) -> Option<jetstream::Context> {
        self.inner.conn.get().map(|conn| conn.js.clone())
    }

    /// Publishes `events` (in feed order) and waits for every acknowledgement. `Ok` means
    /// JetStream holds every one of them (stored now or earlier).
    pub async fn publish(&self, events: &[StoredEvent]) -> Result<(), RelayError> {
        let shared = &self.inner.shared;
        let conn = match self.connection().await {
            Ok(conn) => conn,
            Err(error) => {
                shared.mark_degraded(chain(&error));
                return Err(error);
            }
        };
        if !shared.ready.load(Ordering::SeqCst) {
            shared.refused_unavailable.fetch_add(1, Ordering::Relaxed);
            let reason = shared
                .snapshot()
                .last_error
                .unwrap_or_else(|| "not connected yet".to_owned());
            return Err(RelayError::Unavailable { reason });
        }
        if conn.client.connection_state() != State::Connected {
            shared.mark_degraded("disconnected from NATS".to_owned());
            shared.wake.notify_one();
            shared.refused_unavailable.fetch_add(1, Ordering::Relaxed);
            return Err(RelayError::Unavailable {
                reason: "disconnected from NATS".to_owned(),
            });
        }
        match self.send_batch(conn, events).await {
            Ok(()) => Ok(()),
            Err(error) => {
                shared.failed_publishes.fetch_add(1, Ordering::Relaxed);
                let text = chain(&error);
                let order_only = matches!(
                    &error,
                    RelayError::Publish { source, .. }
                        if matches!(source.kind(), PublishErrorKind::WrongLastMessageId)
                );
                if order_only || matches!(error, RelayError::Encode { .. }) {
                    // NATS works; this batch does not (an earlier message of it was lost,
                    // or an event cannot be encoded). The runner retries event by event.
                    shared.note_error(text);
                } else {
                    shared.mark_degraded(text);
                    shared.wake.notify_one();
                }
                Err(error)
            }
        }
    }

    async fn send_batch(
        &self,
        conn: &Connection,
        events: &[StoredEvent],
    ) -> Result<(), RelayError> {
        let settings = &self.inner.settings;
        let max_payload = match conn.client.server_info().max_payload {
            0 => DEFAULT_MAX_PAYLOAD,
            limit => limit,
        };
        let window = settings.max_outstanding_acks.max(1);
        let mut in_flight: VecDeque<(&StoredEvent, PublishAckFuture)> =
            VecDeque::with_capacity(window);
        let mut previous: Option<i64> = None;
        for event in events {
            if in_flight.len() >= window {
                if let Some((sent, ack)) = in_flight.pop_front() {
                    self.settle(sent, ack).await?;
                }
            }
            let message = Outgoing::build(event, &settings.subject_prefix, max_payload).map_err(
                |source| RelayError::Encode {
                    global_position: event.global_position,
                    source,
                },
            )?;
            if message.payload_omitted {
                self.inner
                    .shared
                    .payloads_omitted
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    global_position = event.global_position,
                    "event exceeds the NATS maximum payload; published without its payload"
                );
            }
            let mut publish = PublishMessage::build()
                .payload(message.body.into())
                .headers(message.headers);
            if let Some(previous) = previous {
                // Refused unless the message before it in this batch is the stream's last:
                // a lost message can never be overtaken by a later one.
                publish = publish.expected_last_message_id(previous.to_string());
            }
            let ack = conn
                .js
                .send_publish(message.subject, publish)
                .await
                .map_err(|source| RelayError::Publish {
                    global_position: event.global_position,
                    source,
                })?;
            in_flight.push_back((event, ack));
            previous = Some(event.global_position);
        }
        while let Some((sent, ack)) = in_flight.pop_front() {
            self.settle(sent, ack).await?;
        }
        Ok(())
    }

    async fn settle(&self, event: &StoredEvent, ack: PublishAckFuture) -> Result<(), RelayError> {
        let global_position = event.global_position;
        let ack = ack.await.map_err(|source| RelayError::Publish {
            global_position,
            source,
        })?;
        let shared = &self.inner.shared;
        if ack.duplicate {
            shared.duplicates.fetch_add(1, Ordering::Relaxed);
        } else {
            shared.published.fetch_add(1, Ordering::Relaxed);
            shared.events.record(event);
        }
        shared
            .last_published
            .store(global_position, Ordering::Relaxed);
        Ok(())
    }

    /// The connection, created on first use (in the background: it never waits for the
    /// server), with the health probe started.
    async fn connection(&self) -> Result<&Connection, RelayError> {
        self.inner
            .conn
            .get_or_try_init(|| async {
                let settings = &self.inner.settings;
                let shared = self.inner.shared.clone();
                let client = settings
                    .connect_options("flowable-ui relay")
                    .retry_on_initial_connect()
                    .event_callback(move |event| {
                        let shared = shared.clone();
                        async move { on_event(&shared, event) }
                    })
                    .connect(settings.url.as_str())
                    .await
                    .map_err(|source| RelayError::Connect {
                        url: settings.url.clone(),
                        source,
                    })?;
                let js = settings.jetstream(client.clone());
                tokio::spawn(probe(Arc::downgrade(&self.inner)));
                Ok(Connection { client, js })
            })
            .await
    }
}

/// NATS connection events: a disconnect degrades at once (before a publish has to time
/// out); a (re)connect wakes the probe.
fn on_event(shared: &Shared, event: Event) {
    match event {
        Event::Connected => {
            tracing::debug!("NATS relay connection established");
            shared.wake.notify_one();
        }
        Event::Disconnected | Event::Closed => {
            shared.mark_degraded(format!("NATS connection {event}"));
            shared.wake.notify_one();
        }
        Event::LameDuckMode | Event::Draining | Event::SlowConsumer(_) => {
            tracing::info!(%event, "NATS relay connection event");
        }
        Event::ServerError(_) | Event::ClientError(_) => {
            tracing::warn!(%event, "NATS relay connection error");
        }
    }
}

/// While the relay is not ready: probe (create or update the stream) with a capped
/// exponential back-off, and mark it connected on success. While ready: sleep until woken.
/// Ends when the relay is dropped.
async fn probe(inner: Weak<Inner>) {
    let mut delay = PROBE_INITIAL_DELAY;
    loop {
        let Some(relay) = inner.upgrade() else {
            return;
        };
        let shared = relay.shared.clone();
        if shared.closed.load(Ordering::SeqCst) {
            return;
        }
        let max_delay = relay.settings.reconnect_max_delay.max(PROBE_INITIAL_DELAY);
        let ready = shared.ready.load(Ordering::SeqCst) || check(&relay).await;
        if ready {
            delay = PROBE_INITIAL_DELAY;
        }
        // Never hold the relay while waiting, so dropping it ends this task.
        drop(relay);
        if ready {
            shared.wake.notified().await;
        } else {
            tokio::select! {
                () = shared.wake.notified() => {}
                () = sleep(delay) => {}
            }
            delay = delay.saturating_mul(2).min(max_delay);
        }
    }
}

/// One probe; `true` if the relay is ready now.
async fn check(relay: &Inner) -> bool {
    let shared = &relay.shared;
    let Some(conn) = relay.conn.get() else {
        return false;
    };
    match conn.client.connection_state() {
        State::Connected => {}
        State::Pending
            if relay.created.elapsed() < relay.settings.connect_timeout.saturating_mul(2) =>
        {
            // Still making the first connection: not degraded yet.
            return false;
        }
        state => {
            if shared.snapshot().state != RelayState::Degraded {
                shared.mark_degraded(format!("not connected to NATS ({state:?})"));
            }
            return false;
        }
    }
    let limit = relay.settings.ack_timeout.saturating_mul(2);
    match timeout(limit, ensure_stream(&conn.js, &relay.settings)).await {
        Ok(Ok(_)) => {
            shared.mark_connected();
            true
        }
        Ok(Err(error)) => {
            shared.mark_degraded(chain(&error));
            false
        }
        Err(_) => {
            shared.mark_degraded("JetStream did not answer the stream probe".to_owned());
            false
        }
    }
}

#[async_trait]
impl Projector for NatsRelay {
    fn name(&self) -> &str {
        RELAY_NAME
    }

    /// Publishes the batch and returns once JetStream has acknowledged every event; the
    /// runner's transaction, which holds the checkpoint, commits only afterwards. That commit
    /// does not wait for the WAL flush (ADR 0005): a checkpoint lost in a database crash only
    /// moves the relay back by what it published in the last moments before, and that
    /// re-send is dropped by JetStream (`Nats-Msg-Id`, duplicate window) and by
    /// de-duplicating subscribers. It can never move the checkpoint past an unacknowledged
    /// event.
    async fn apply(
        &self,
        _tx: &mut Transaction<'_, Postgres>,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        self.publish(events).await.map_err(|error| {
            let position = error
                .global_position()
                .or_else(|| events.first().map(|event| event.global_position))
                .unwrap_or_default();
            ProjectionError::failed(position, error)
        })
    }
}
