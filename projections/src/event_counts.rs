//! How many events of each type each tenant produced, for the `events_total{type,tenant}`
//! metric. Counted where each event is fanned out exactly once: by the NATS relay when
//! JetStream stores an event (not on a duplicate re-send), or by the embedded backend's
//! loop when it puts an event on its bus. Only one replica relays at a time, so the sum
//! over replicas is the total; a replica's counts restart at zero when it takes over,
//! which Prometheus' `increase()`/`rate()` handle.
//!
//! Cardinality is tenants × event types (about ten types): fine for hundreds of tenants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::event::StoredEvent;
use crate::relay::tenant_of;

/// The label used for events that name no tenant.
pub const NO_TENANT: &str = "-";

/// Shared counts, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct EventCounts {
    counts: Arc<Mutex<HashMap<(String, String), u64>>>,
}

impl EventCounts {
    /// Counts one fanned-out event.
    pub fn record(&self, event: &StoredEvent) {
        let tenant = tenant_of(event).unwrap_or_else(|| NO_TENANT.to_owned());
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        *counts
            .entry((event.event_type.clone(), tenant))
            .or_default() += 1;
    }

    /// `(event type, tenant, count)` for every pair seen, sorted.
    pub fn snapshot(&self) -> Vec<(String, String, u64)> {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<_> = counts
            .iter()
            .map(|((kind, tenant), n)| (kind.clone(), tenant.clone(), *n))
            .collect();
        all.sort();
        all
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;

    fn event(kind: &str, metadata: serde_json::Value) -> StoredEvent {
        StoredEvent {
            global_position: 1,
            tx_id: 1,
            aggregate_type: "ProcessModel".into(),
            aggregate_id: "m".into(),
            sequence: 1,
            event_type: kind.into(),
            event_version: "1.0".into(),
            payload: json!({}).into(),
            metadata: metadata.into(),
            recorded_at: Utc::now(),
        }
    }

    #[test]
    fn counts_by_type_and_tenant() {
        let counts = EventCounts::default();
        counts.record(&event("ModelCreated", json!({"tenant_id": "acme"})));
        counts.record(&event("ModelCreated", json!({"tenant_id": "acme"})));
        counts.record(&event("ModelPublished", json!({"tenant_id": "acme"})));
        counts.record(&event("ModelCreated", json!({})));
        assert_eq!(
            counts.snapshot(),
            vec![
                ("ModelCreated".into(), NO_TENANT.into(), 1),
                ("ModelCreated".into(), "acme".into(), 2),
                ("ModelPublished".into(), "acme".into(), 1),
            ]
        );
    }
}
