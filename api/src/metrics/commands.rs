//! How commands used the write side's state cache, read at scrape time.

use commands::StateCacheCounts;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;

#[derive(Debug)]
pub(super) struct StateCacheCollector {
    counts: StateCacheCounts,
}

impl StateCacheCollector {
    pub(super) fn new(counts: StateCacheCounts) -> Self {
        Self { counts }
    }
}

impl Collector for StateCacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "command_state_cache",
            "Commands of this replica by how they found the model's state: hit (appended \
             without a load, on the kept state or, for a create, on a stream assumed new), \
             miss (loaded from the event store), stale (the kept or assumed state was not \
             the store's, or led to a refusal or no change: decided again on a load)",
            None,
            MetricType::Counter,
        )?;
        for (result, count) in [
            ("hit", self.counts.hits()),
            ("miss", self.counts.misses()),
            ("stale", self.counts.stale()),
        ] {
            ConstCounter::new(count).encode(family.encode_family(&[("result", result)])?)?;
        }
        Ok(())
    }
}
