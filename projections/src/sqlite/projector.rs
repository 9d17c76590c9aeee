//! The embedded backend's projector: one background loop that applies the event feed to the
//! models and audit projections (each with its own checkpoint, saved in the transaction of
//! its effects), then publishes the batch on the in-process event bus. One process owns the
//! SQLite file, so there are no advisory locks and no fail-over.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use sqlx::SqlitePool;
use tokio::sync::{broadcast, watch, Notify};

use super::{audit_store, checkpoint, events, model_store};
use crate::error::{chain, ProjectionError};
use crate::event::StoredEvent;
use crate::event_counts::EventCounts;
use crate::position::Position;
use crate::relay::Envelope;
use crate::runner::RunnerState;

/// The models consumer's checkpoint name (as on PostgreSQL).
pub const MODELS: &str = crate::models::FAMILY;
/// The audit consumer's checkpoint name (as on PostgreSQL).
pub const AUDIT: &str = crate::audit::NAME;

/// Tuning of [`SqliteProjections`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// Events per transaction (and per rebuild batch).
    pub batch_size: i64,
    /// How often the loop looks for events when nobody calls [`SqliteProjections::notify`].
    pub poll_interval: Duration,
    /// Events the bus holds for a slow subscriber before that subscriber is cut off.
    pub bus_capacity: usize,
    /// The longest pause between retries of a failing batch (doubling from 50 ms).
    pub max_backoff: Duration,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_millis(500),
            bus_capacity: 4_096,
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// One consumer as the admin endpoint shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerStatus {
    pub name: &'static str,
    /// The last event applied (`tx_id` is the event's commit id, see the feed module).
    pub checkpoint: Position,
    /// Events stored after the checkpoint.
    pub lag: i64,
    /// Age in seconds of the oldest of them (`None` when caught up).
    pub lag_seconds: Option<f64>,
    /// Both consumers run in one loop and one transaction per batch, so they share it.
    pub state: RunnerState,
    pub last_error: Option<String>,
}

/// The loop's health, shared by both consumers.
#[derive(Debug, Clone, Default)]
struct Health {
    running: bool,
    last_error: Option<String>,
}

/// The SQLite read side: projector loop, read-your-writes waits, status, rebuilds
/// ([`Self::rebuild`]) and the event bus ([`Self::subscribe`]). Cheap to clone.
#[derive(Clone)]
pub struct SqliteProjections {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) pool: SqlitePool,
    pub(super) config: SqliteConfig,
    wake: Arc<Notify>,
    pub(super) bus: broadcast::Sender<Envelope>,
    /// Events put on the bus, by type and tenant (`events_total`).
    events: EventCounts,
    /// The models checkpoint's global position, for [`SqliteProjections::wait_for`].
    pub(super) models_at: watch::Sender<i64>,
    health: Mutex<Health>,
    /// One writer of the read tables at a time (a batch or a whole rebuild); it guards the
    /// global position up to which events were published on the bus.
    pub(super) writer: tokio::sync::Mutex<i64>,
    /// Held by a running rebuild, so a second one is refused rather than queued.
    pub(super) rebuilding: tokio::sync::Mutex<()>,
}

impl Inner {
    /// Wakes read-your-writes waiters once the models checkpoint is at `global_position`.
    pub(super) fn advance_models(&self, global_position: i64) {
        self.models_at.send_if_modified(|at| {
            let moved = *at != global_position;
            *at = global_position;
            moved
        });
    }
}

impl SqliteProjections {
    /// The read side over `pool` (migrated with `migrations/sqlite`); start it with
    /// [`Self::run`].
    pub async fn new(pool: SqlitePool, config: SqliteConfig) -> Result<Self, sqlx::Error> {
        let mut conn = pool.acquire().await?;
        let models = checkpoint::load(&mut conn, MODELS).await?;
        let audit = checkpoint::load(&mut conn, AUDIT).await?;
        drop(conn);
        // Subscribers are in-process: events applied before this process started were
        // published (or not) by an earlier one, and nobody here is waiting for them.
        let published = models.global_position.max(audit.global_position);
        let (bus, _) = broadcast::channel(config.bus_capacity.max(1));
        let inner = Inner {
            pool,
            config,
            wake: Arc::new(Notify::new()),
            bus,
            events: EventCounts::default(),
            models_at: watch::Sender::new(models.global_position),
            health: Mutex::new(Health::default()),
            writer: tokio::sync::Mutex::new(published),
            rebuilding: tokio::sync::Mutex::new(()),
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Events put on the bus since start, by type and tenant.
    pub fn event_counts(&self) -> EventCounts {
        self.inner.events.clone()
    }

    /// The pool the read side uses.
    pub fn pool(&self) -> &SqlitePool {
        &self.inner.pool
    }

    /// Wakes the loop: the write side calls this after each commit. A wake-up while a batch
    /// runs is kept, so none is lost.
    pub fn notify(&self) {
        self.inner.wake.notify_one();
    }

    /// The `Notify` behind [`Self::notify`], for a write side that holds only that.
    pub fn waker(&self) -> Arc<Notify> {
        self.inner.wake.clone()
    }

    /// Applies the feed until `shutdown` resolves. A failing batch is rolled back, logged,
    /// shown in [`Self::status`] and retried with back-off; it is never skipped.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        self.set_health(|h| h.running = true);
        let min_backoff = Duration::from_millis(50);
        let mut backoff = min_backoff;
        loop {
            let step = tokio::select! {
                () = &mut shutdown => break,
                step = self.step() => step,
            };
            let pause = match step {
                Ok(applied) => {
                    backoff = min_backoff;
                    self.set_health(|h| h.last_error = None);
                    if applied >= self.inner.config.batch_size {
                        continue; // more may be waiting
                    }
                    self.inner.config.poll_interval
                }
                Err(error) => {
                    let text = chain(&error);
                    tracing::warn!(error = %text, ?backoff, "sqlite projection batch failed; retrying");
                    self.set_health(|h| h.last_error = Some(text));
                    let pause = backoff;
                    backoff = (backoff * 2).min(self.inner.config.max_backoff.max(min_backoff));
                    pause
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
        self.set_health(|h| h.running = false);
    }

    /// One batch: the events after the lower checkpoint, each consumer given those after
    /// its own, in one `BEGIN IMMEDIATE` transaction; then the bus. The number of events read.
    async fn step(&self) -> Result<i64, ProjectionError> {
        let mut published = self.inner.writer.lock().await;
        let mut tx = self.inner.pool.begin_with("BEGIN IMMEDIATE").await?;
        let models_at = checkpoint::load(&mut tx, MODELS).await?;
        let audit_at = checkpoint::load(&mut tx, AUDIT).await?;
        let from = models_at.global_position.min(audit_at.global_position);
        let batch = events::read_after(&mut tx, from, self.inner.config.batch_size).await?;
        let Some(last) = batch.last().map(StoredEvent::position) else {
            tx.rollback().await?;
            return Ok(0);
        };
        let after = |at: Position| -> Vec<&StoredEvent> {
            batch
                .iter()
                .filter(|e| e.global_position > at.global_position)
                .collect()
        };
        model_store::apply(&mut tx, &after(models_at)).await?;
        audit_store::apply(&mut tx, &after(audit_at)).await?;
        let models_to = models_at.max(last);
        checkpoint::save(&mut tx, MODELS, models_to).await?;
        checkpoint::save(&mut tx, AUDIT, audit_at.max(last)).await?;
        tx.commit().await?;

        // Healthy again before anyone waiting on the checkpoint looks at the status.
        self.set_health(|h| h.last_error = None);
        // The bus before the waiters: once a command has answered, its events are on the
        // bus, so a subscriber that starts after the answer does not get them as new.
        for event in batch.iter().filter(|e| e.global_position > *published) {
            // No receivers is not an error: nobody is streaming right now.
            let _ = self.inner.bus.send(Envelope::from_stored(event));
            self.inner.events.record(event);
        }
        *published = (*published).max(last.global_position);
        self.inner.advance_models(models_to.global_position);
        Ok(i64::try_from(batch.len()).unwrap_or(i64::MAX))
    }

    /// Waits until the models projection has applied the event at `global_position` (and
    /// so every event before it), at most `timeout`; `true` if it has. Read-your-writes:
    /// a command waits for its last event before it answers.
    pub async fn wait_for(&self, global_position: i64, timeout: Duration) -> bool {
        let mut at = self.inner.models_at.subscribe();
        let reached = tokio::time::timeout(timeout, at.wait_for(|at| *at >= global_position))
            .await
            .is_ok_and(|seen| seen.is_ok());
        reached
    }

    /// Events stored after the lower of the two checkpoints: what the loop has yet to do.
    pub async fn lag(&self) -> Result<i64, sqlx::Error> {
        Ok(self
            .status()
            .await?
            .iter()
            .map(|consumer| consumer.lag)
            .max()
            .unwrap_or(0))
    }

    /// Each consumer's checkpoint, lag, state and last error.
    pub async fn status(&self) -> Result<Vec<ConsumerStatus>, sqlx::Error> {
        let health = self
            .inner
            .health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let state = match (&health.last_error, health.running) {
            (Some(_), true) => RunnerState::Failing,
            (None, true) => RunnerState::Running,
            (_, false) => RunnerState::Idle,
        };
        let mut conn = self.inner.pool.acquire().await?;
        let mut statuses = Vec::with_capacity(2);
        for name in [MODELS, AUDIT] {
            let checkpoint = checkpoint::load(&mut conn, name).await?;
            let (lag, lag_seconds) =
                events::lag_after(&mut conn, checkpoint.global_position).await?;
            statuses.push(ConsumerStatus {
                name,
                checkpoint,
                lag,
                lag_seconds,
                state,
                last_error: health.last_error.clone(),
            });
        }
        Ok(statuses)
    }

    fn set_health(&self, change: impl FnOnce(&mut Health)) {
        change(
            &mut self
                .inner
                .health
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
    }
}
