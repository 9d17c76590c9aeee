//! Prometheus metrics (prometheus-client), served at `/actuator/prometheus` under the names
//! the Grafana dashboard in `deploy/grafana/` queries.

mod commands;
mod events;
mod http;
mod process;
mod projectors;
mod relay;
mod store;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use http::track_requests;

/// The metrics of one server. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    http: http::HttpMetrics,
    /// Events appended by this replica's commands (sum over replicas for the total).
    pub eventstore_appends: Counter,
    /// Commands refused, by reason (sum over replicas).
    pub commands_rejected: prometheus_client::metrics::family::Family<RejectionLabels, Counter>,
    /// Refused commands not recorded in the audit log because their client exceeded the
    /// rejection-record rate limit.
    pub commands_rejected_unrecorded: Counter,
    /// Committed events each projection has not applied yet (the same on every replica:
    /// take the max across replicas, not the sum). Refreshed on every scrape.
    pub projection_lag: prometheus_client::metrics::family::Family<ProjectionLabels, Gauge>,
    /// Age of the oldest event a projection has not applied (0 when caught up); the NATS
    /// relay is the projection `nats_relay`, so this is also the relay's lag in seconds.
    pub projection_lag_seconds:
        prometheus_client::metrics::family::Family<ProjectionLabels, Gauge<f64, AtomicU64>>,
    /// How long a command that wrote events waited for the read tables to include them
    /// (read-your-writes), timeouts included: what that guarantee adds to a command.
    pub read_your_writes_wait: Histogram,
    /// Commands answered before the read tables included their events (the wait timed out;
    /// the response says so in `X-Read-Your-Writes`).
    pub read_your_writes_timeouts: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ProjectionLabels {
    pub projection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct RejectionLabels {
    pub reason: String,
}

impl Metrics {
    pub fn new<DB: sqlx::Database>(pool: sqlx::Pool<DB>) -> Self {
        let mut registry = Registry::default();
        let http = http::HttpMetrics::register(&mut registry);
        let eventstore_appends = Counter::default();
        registry.register(
            "eventstore_appends",
            "Events appended to the event store by commands of this replica",
            eventstore_appends.clone(),
        );
        let commands_rejected = prometheus_client::metrics::family::Family::default();
        registry.register(
            "commands_rejected",
            "Commands refused, by reason, on this replica",
            commands_rejected.clone(),
        );
        let commands_rejected_unrecorded = Counter::default();
        registry.register(
            "commands_rejected_unrecorded",
            "Refused commands left out of the audit log by the rejection-record rate limit",
            commands_rejected_unrecorded.clone(),
        );
        let projection_lag = prometheus_client::metrics::family::Family::default();
        registry.register(
            "projection_lag_events",
            "Committed events a projection has not applied yet",
            projection_lag.clone(),
        );
        let projection_lag_seconds = prometheus_client::metrics::family::Family::default();
        registry.register(
            "projection_lag_seconds",
            "Age of the oldest committed event a projection has not applied yet",
            projection_lag_seconds.clone(),
        );
        let read_your_writes_wait = Histogram::new([
            0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25,
            0.5, 1.0, 2.5,
        ]);
        registry.register(
            "read_your_writes_wait_seconds",
            "Time a command waited for the read tables to include its events",
            read_your_writes_wait.clone(),
        );
        let read_your_writes_timeouts = Counter::default();
        registry.register(
            "read_your_writes_timeouts",
            "Commands answered before the read tables included their events",
            read_your_writes_timeouts.clone(),
        );
        registry.register_collector(Box::new(process::ProcessCollector::new()));
        registry.register_collector(Box::new(store::PoolCollector::new(pool)));
        Self {
            registry: Arc::new(Mutex::new(registry)),
            http,
            eventstore_appends,
            commands_rejected,
            commands_rejected_unrecorded,
            projection_lag,
            projection_lag_seconds,
            read_your_writes_wait,
            read_your_writes_timeouts,
        }
    }

    /// Exports `events_total{type,tenant}` from the counts of whatever fans events out.
    pub fn register_event_counts(&self, counts: projections::event_counts::EventCounts) {
        self.with_registry(|registry| {
            registry.register_collector(Box::new(events::EventsCollector::new(counts)));
        });
    }

    /// Exports `command_state_cache_total{result}` from the write side's counts.
    pub fn register_state_cache(&self, counts: ::commands::StateCacheCounts) {
        self.with_registry(|registry| {
            registry.register_collector(Box::new(commands::StateCacheCollector::new(counts)));
        });
    }

    /// Exports the projector runners' step counters (`projection_steps_total`, ...).
    pub fn register_projectors(&self, handles: Vec<projections::ProjectorHandle>) {
        self.with_registry(|registry| {
            registry.register_collector(Box::new(projectors::ProjectorsCollector::new(handles)));
        });
    }

    /// Exports the relay's counters (`relay_published_total`, ...).
    pub fn register_relay(&self, status: projections::relay::RelayStatusHandle) {
        self.with_registry(|registry| {
            registry.register_collector(Box::new(relay::RelayCollector::new(status)));
        });
    }

    /// Lets other parts (projections, relay) add their own metrics.
    pub fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        let mut registry = self
            .registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut registry)
    }

    /// Refreshes the scrape-time gauges (projection lag) from the database.
    pub async fn refresh(&self, store: &dyn crate::backend::ReadStore) {
        match store.projections().await {
            Ok(statuses) => {
                for status in statuses {
                    let labels = ProjectionLabels {
                        projection: status.name,
                    };
                    self.projection_lag_seconds
                        .get_or_create(&labels)
                        .set(status.lag_seconds.unwrap_or(0.0));
                    self.projection_lag.get_or_create(&labels).set(status.lag);
                }
            }
            Err(error) => tracing::warn!(%error, "projection lag unknown"),
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut out = String::with_capacity(16 * 1024);
        encode(&mut out, &registry)?;
        Ok(out)
    }
}
