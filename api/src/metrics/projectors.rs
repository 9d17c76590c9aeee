//! The projector runners' step counters, read from their status at scrape time: how many
//! steps applied events, how many events, and their time in all. Only the replica running a
//! projector counts its steps, so summing over replicas gives the totals; the counters
//! restart at zero with the process, which `increase()`/`rate()` handle. The mean step is
//! `rate(projection_step_seconds_total) / rate(projection_steps_total)`: the time a command's
//! read-your-writes wait sits behind.

use projections::{ProjectorHandle, RunnerStatus};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;

pub(super) struct ProjectorsCollector {
    handles: Vec<ProjectorHandle>,
}

impl std::fmt::Debug for ProjectorsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.handles.iter().map(ProjectorHandle::name))
            .finish()
    }
}

impl ProjectorsCollector {
    pub(super) fn new(handles: Vec<ProjectorHandle>) -> Self {
        Self { handles }
    }
}

impl Collector for ProjectorsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let statuses: Vec<_> = self
            .handles
            .iter()
            .map(|handle| (handle.name(), handle.status()))
            .collect();
        per_projection(
            &mut encoder,
            &statuses,
            "projection_steps",
            "Projector steps that applied events on this replica",
            |status| status.steps_applied,
        )?;
        per_projection(
            &mut encoder,
            &statuses,
            "projection_events_applied",
            "Events applied by projector steps on this replica",
            |status| status.events_applied,
        )?;
        per_projection(
            &mut encoder,
            &statuses,
            "projection_step_seconds",
            "Time of the projector steps that applied events, from the feed read to the commit",
            |status| status.step_micros as f64 / 1e6,
        )
    }
}

/// One counter family `name`, a series per projection with `value` of its status.
fn per_projection<N>(
    encoder: &mut DescriptorEncoder,
    statuses: &[(&str, RunnerStatus)],
    name: &str,
    help: &str,
    value: impl Fn(&RunnerStatus) -> N,
) -> Result<(), std::fmt::Error>
where
    ConstCounter<N>: EncodeMetric,
{
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (projection, status) in statuses {
        ConstCounter::new(value(status))
            .encode(family.encode_family(&[("projection", *projection)])?)?;
    }
    Ok(())
}
