//! The NATS relay's counters, read from its status at scrape time. Only the replica holding
//! the relay's lock publishes, so summing over replicas gives the totals; counters restart
//! at zero on fail-over, which `increase()`/`rate()` handle.

use projections::relay::{RelayState, RelayStatusHandle};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

#[derive(Debug)]
pub(super) struct RelayCollector {
    status: RelayStatusHandle,
}

impl RelayCollector {
    pub(super) fn new(status: RelayStatusHandle) -> Self {
        Self { status }
    }
}

impl Collector for RelayCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let status = self.status.status();
        ConstCounter::new(status.published).encode(encoder.encode_descriptor(
            "relay_published",
            "Events published to NATS and acknowledged (not duplicates)",
            None,
            MetricType::Counter,
        )?)?;
        ConstCounter::new(status.failed_publishes).encode(encoder.encode_descriptor(
            "relay_publish_failures",
            "Batches not fully acknowledged by NATS (rolled back and retried)",
            None,
            MetricType::Counter,
        )?)?;
        ConstCounter::new(status.duplicates).encode(encoder.encode_descriptor(
            "relay_duplicates",
            "Events NATS acknowledged as duplicates of earlier sends",
            None,
            MetricType::Counter,
        )?)?;
        ConstGauge::new(i64::from(status.state == RelayState::Connected)).encode(
            encoder.encode_descriptor(
                "relay_connected",
                "1 when the relay can publish, 0 while NATS is unreachable",
                None,
                MetricType::Gauge,
            )?,
        )?;
        Ok(())
    }
}
