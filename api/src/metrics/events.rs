//! `events_total{type,tenant}`: events fanned out, by type and tenant, read at scrape time
//! from the counts kept where events are fanned out (see `projections::event_counts` for
//! what each replica counts and why the sum over replicas is the total).

use projections::event_counts::EventCounts;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;

#[derive(Debug)]
pub(super) struct EventsCollector {
    counts: EventCounts,
}

impl EventsCollector {
    pub(super) fn new(counts: EventCounts) -> Self {
        Self { counts }
    }
}

impl Collector for EventsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "events",
            "Events fanned out (relayed to NATS or put on the embedded bus), by type and tenant",
            None,
            MetricType::Counter,
        )?;
        for (kind, tenant, count) in self.counts.snapshot() {
            let labels = [("type", kind.as_str()), ("tenant", tenant.as_str())];
            ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
