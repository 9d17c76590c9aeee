//! The NATS fan-out as this replica sees it: the relay projector (active on one replica at a
//! time) and the JetStream connection the live event stream reads from.

use std::sync::Arc;
use std::time::Duration;

use projections::relay::{NatsRelay, RelaySettings, RelayStatus};

use crate::config::NatsSettings;

/// The relay and its settings; `None` in `AppState` when NATS is not configured.
#[derive(Clone)]
pub struct Relay {
    pub relay: Arc<NatsRelay>,
    pub settings: RelaySettings,
    /// Events per relay batch (`APP_NATS__BATCH_SIZE`).
    pub batch_size: i64,
}

impl Relay {
    pub fn from_settings(nats: &NatsSettings) -> Option<Self> {
        let url = nats.url.as_ref()?.expose().to_owned();
        let settings = RelaySettings {
            url,
            stream: nats.stream.clone(),
            subject_prefix: nats.subject_prefix.clone(),
            max_age: Duration::from_secs(nats.max_age_secs),
            max_bytes: nats.max_bytes,
            replicas: nats.replicas,
            duplicate_window: Duration::from_secs(nats.duplicate_window_secs),
            max_outstanding_acks: nats.max_outstanding_acks.max(1),
            ..RelaySettings::default()
        };
        Some(Self {
            relay: Arc::new(NatsRelay::new(settings.clone())),
            settings,
            batch_size: nats.batch_size.max(1),
        })
    }

    pub fn status(&self) -> RelayStatus {
        self.relay.status()
    }
}
