//! The relay's health and counters, shared with the API (readiness, Prometheus).

use crate::event_counts::EventCounts;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Notify;

/// Whether the relay can publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RelayState {
    /// Not connected yet (the first connection is under way).
    Connecting,
    /// Connected, and the stream answered: batches are published.
    Connected,
    /// Disconnected, or the last publish or probe failed: batches are refused at once
    /// (the checkpoint stays) until a probe succeeds. Commands are never affected; the
    /// relay's lag grows and is caught up afterwards.
    Degraded,
}

/// A snapshot of the relay's health and counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayStatus {
    pub state: RelayState,
    /// When `state` last changed.
    pub since: DateTime<Utc>,
    /// Why the relay is degraded (or last was), with causes.
    pub last_error: Option<String>,
    /// Events JetStream stored (acknowledged, not as duplicates).
    pub published: u64,
    /// Events JetStream acknowledged as duplicates (re-sends after a crash or a failed
    /// batch; not stored again).
    pub duplicates: u64,
    /// Batches that were sent but not fully acknowledged (timeout, connection lost,
    /// refused); each is rolled back and retried.
    pub failed_publishes: u64,
    /// Batches refused without sending because NATS was unavailable.
    pub refused_unavailable: u64,
    /// Events published without their payload because they exceeded the server's maximum
    /// payload.
    pub payloads_omitted: u64,
    /// The global position of the last acknowledged event.
    pub last_published: Option<i64>,
}

/// State shared by the relay, its NATS event callback and its probe task.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Whether a batch may be published now.
    pub(crate) ready: AtomicBool,
    /// Wakes the probe task (disconnect, reconnect, failure, shutdown).
    pub(crate) wake: Notify,
    /// Set when the relay is dropped; the probe task ends.
    pub(crate) closed: AtomicBool,
    pub(crate) published: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) failed_publishes: AtomicU64,
    pub(crate) refused_unavailable: AtomicU64,
    pub(crate) payloads_omitted: AtomicU64,
    /// `-1` before the first acknowledgement.
    pub(crate) last_published: AtomicI64,
    /// Events JetStream stored, by type and tenant.
    pub(crate) events: EventCounts,
    health: Mutex<Health>,
}

#[derive(Debug)]
struct Health {
    state: RelayState,
    since: DateTime<Utc>,
    last_error: Option<String>,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Self {
            ready: AtomicBool::new(false),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            published: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            failed_publishes: AtomicU64::new(0),
            refused_unavailable: AtomicU64::new(0),
            payloads_omitted: AtomicU64::new(0),
            last_published: AtomicI64::new(-1),
            events: EventCounts::default(),
            health: Mutex::new(Health {
                state: RelayState::Connecting,
                since: Utc::now(),
                last_error: None,
            }),
        }
    }

    /// Publishing works again.
    pub(crate) fn mark_connected(&self) {
        self.ready.store(true, Ordering::SeqCst);
        let changed = self.set_health(RelayState::Connected, None);
        if changed {
            tracing::info!("NATS relay connected");
        }
    }

    /// Publishing does not work: refuse batches until the probe finds that it does (wake
    /// the probe separately when the cause is new).
    pub(crate) fn mark_degraded(&self, error: String) {
        self.ready.store(false, Ordering::SeqCst);
        let changed = self.set_health(RelayState::Degraded, Some(error.clone()));
        if changed {
            tracing::warn!(%error, "NATS relay degraded; events wait in PostgreSQL");
        } else {
            tracing::debug!(%error, "NATS relay still degraded");
        }
    }

    /// Records `error` without changing readiness (a failure of one batch, not of NATS).
    pub(crate) fn note_error(&self, error: String) {
        if let Ok(mut health) = self.health.lock() {
            health.last_error = Some(error);
        }
    }

    /// Returns whether the state changed.
    fn set_health(&self, state: RelayState, error: Option<String>) -> bool {
        let Ok(mut health) = self.health.lock() else {
            return false;
        };
        let changed = health.state != state;
        if changed {
            health.state = state;
            health.since = Utc::now();
        }
        if error.is_some() || state == RelayState::Connected {
            health.last_error = error.or(health.last_error.take());
        }
        changed
    }

    pub(crate) fn snapshot(&self) -> RelayStatus {
        let (state, since, last_error) = match self.health.lock() {
            Ok(health) => (health.state, health.since, health.last_error.clone()),
            Err(_) => (RelayState::Degraded, Utc::now(), None),
        };
        let last = self.last_published.load(Ordering::Relaxed);
        RelayStatus {
            state,
            since,
            last_error,
            published: self.published.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            failed_publishes: self.failed_publishes.load(Ordering::Relaxed),
            refused_unavailable: self.refused_unavailable.load(Ordering::Relaxed),
            payloads_omitted: self.payloads_omitted.load(Ordering::Relaxed),
            last_published: (last >= 0).then_some(last),
        }
    }
}

/// A cheap, cloneable view of a relay's health and counters, for readiness checks and
/// metrics; stays valid after the relay is dropped. The relay's lag (events not yet
/// published) is the runner's: `ProjectorHandle::lag`.
#[derive(Debug, Clone)]
pub struct RelayStatusHandle {
    pub(crate) shared: Arc<Shared>,
}

impl RelayStatusHandle {
    /// The current status.
    pub fn status(&self) -> RelayStatus {
        self.shared.snapshot()
    }

    /// Events JetStream stored, by type and tenant.
    pub fn event_counts(&self) -> EventCounts {
        self.shared.events.clone()
    }

    /// Whether the relay can publish now (for readiness: `false` while degraded).
    pub fn is_connected(&self) -> bool {
        self.shared.ready.load(Ordering::SeqCst)
    }
}
