//! Where the relay publishes and how the JetStream stream is kept: [`RelaySettings`],
//! creating or updating the stream, and connecting to NATS.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::{Client, ConnectOptions};

use super::error::RelayError;

/// The stream every stored event is published to, unless configured otherwise.
pub const DEFAULT_STREAM: &str = "FLOWABLE_EVENTS";
/// The first tokens of every subject: `<prefix>.<tenant>.<aggregate_type>.<aggregate_id>`.
pub const DEFAULT_SUBJECT_PREFIX: &str = "flowable.events";

/// The relay's NATS and JetStream settings. `Default` gives a local development setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// The NATS server(s), e.g. `nats://nats:4222` (comma-separated for several).
    pub url: String,
    /// The JetStream stream name.
    pub stream: String,
    /// The subject prefix (dot-separated tokens, no wildcards); the stream captures
    /// `<prefix>.>`.
    pub subject_prefix: String,
    /// How long the stream keeps an event (JetStream `max_age`). PostgreSQL keeps the
    /// record forever; this only bounds how far back a NATS subscriber can replay.
    pub max_age: Duration,
    /// The stream's size limit in bytes (the oldest events go first); `-1` for none.
    pub max_bytes: i64,
    /// Copies of each message in a clustered JetStream (1 for a single server, 3 in
    /// production).
    pub replicas: usize,
    /// How long JetStream remembers a `Nats-Msg-Id`: a re-publish after a crash within this
    /// window is dropped as a duplicate. Keep it well above the time a relay needs to
    /// restart and the database needs to recover (the relay's checkpoint commits do not
    /// wait for the WAL flush: docs/adr/0004).
    pub duplicate_window: Duration,
    /// Most publishes awaiting their acknowledgement at once (the pipelining window).
    pub max_outstanding_acks: usize,
    /// How long to wait for one acknowledgement (and for JetStream API requests). The
    /// relay's batch transaction stays open while it waits, so keep this short.
    pub ack_timeout: Duration,
    /// How long one attempt to open a TCP connection to NATS may take.
    pub connect_timeout: Duration,
    /// The longest pause between reconnect attempts, and between health probes while
    /// JetStream does not answer.
    pub reconnect_max_delay: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".to_owned(),
            stream: DEFAULT_STREAM.to_owned(),
            subject_prefix: DEFAULT_SUBJECT_PREFIX.to_owned(),
            max_age: Duration::from_secs(7 * 24 * 60 * 60),
            max_bytes: 1024 * 1024 * 1024,
            replicas: 1,
            duplicate_window: Duration::from_secs(5 * 60),
            max_outstanding_acks: 256,
            ack_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            reconnect_max_delay: Duration::from_secs(2),
        }
    }
}

impl RelaySettings {
    /// The subjects the stream captures: `<prefix>.>`.
    pub fn stream_subjects(&self) -> String {
        format!("{}.>", self.subject_prefix)
    }

    /// The stream configuration these settings describe: limits retention (subscribers
    /// do not remove messages), file storage, old messages discarded first.
    pub fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.stream.clone(),
            description: Some(
                "flowable-ui: every stored event, relayed from PostgreSQL (the record)".to_owned(),
            ),
            subjects: vec![self.stream_subjects()],
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            storage: stream::StorageType::File,
            max_age: self.max_age,
            max_bytes: self.max_bytes,
            num_replicas: self.replicas.max(1),
            duplicate_window: self.duplicate_window,
            ..Default::default()
        }
    }

    /// A JetStream context whose API requests and publish acknowledgements time out after
    /// [`Self::ack_timeout`], with room for the relay's window of outstanding acks.
    pub fn jetstream(&self, client: Client) -> jetstream::Context {
        let window = self.max_outstanding_acks.max(1);
        jetstream::ContextBuilder::new()
            .timeout(self.ack_timeout)
            .ack_timeout(self.ack_timeout)
            // Twice the window: acks of a failed batch that were never awaited hold their
            // slot until they time out, and must not block the retry.
            .max_ack_inflight(window.saturating_mul(2))
            .backpressure_on_inflight(true)
            .build(client)
    }

    /// Connection options shared by the relay and subscribers: a client name, the connect
    /// timeout, unlimited reconnects with a capped exponential back-off.
    pub fn connect_options(&self, name: &str) -> ConnectOptions {
        let max_delay = self.reconnect_max_delay;
        ConnectOptions::new()
            .name(name)
            .connection_timeout(self.connect_timeout)
            .max_reconnects(None)
            .reconnect_delay_callback(move |attempts| reconnect_delay(attempts, max_delay))
    }
}

/// 0 for the first attempt, then 50 ms doubling per attempt, at most `max`.
fn reconnect_delay(attempts: usize, max: Duration) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let exponent = u32::try_from(attempts - 2).unwrap_or(u32::MAX).min(16);
    Duration::from_millis(50)
        .saturating_mul(1 << exponent)
        .min(max)
}

/// Connects to NATS now (fails if no server answers), for subscribers such as the SSE
/// endpoint and `events tail`. The client reconnects by itself after a later outage.
pub async fn connect(settings: &RelaySettings, name: &str) -> Result<Client, RelayError> {
    settings
        .connect_options(name)
        .connect(settings.url.as_str())
        .await
        .map_err(|source| RelayError::Connect {
            url: settings.url.clone(),
            source,
        })
}

/// Creates the stream, or updates its configuration to `settings` (limits, replicas,
/// duplicate window), and returns its state.
pub async fn ensure_stream(
    js: &jetstream::Context,
    settings: &RelaySettings,
) -> Result<stream::Info, RelayError> {
    js.create_or_update_stream(settings.stream_config())
        .await
        .map_err(|source| RelayError::Stream {
            stream: settings.stream.clone(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_design() {
        let settings = RelaySettings::default();
        assert_eq!(settings.stream, "FLOWABLE_EVENTS");
        assert_eq!(settings.stream_subjects(), "flowable.events.>");
        let config = settings.stream_config();
        assert_eq!(config.subjects, vec!["flowable.events.>".to_owned()]);
        assert_eq!(config.retention, stream::RetentionPolicy::Limits);
        assert_eq!(config.num_replicas, 1);
    }

    #[test]
    fn reconnect_back_off_is_capped() {
        let max = Duration::from_secs(2);
        assert_eq!(reconnect_delay(1, max), Duration::ZERO);
        assert_eq!(reconnect_delay(2, max), Duration::from_millis(50));
        assert_eq!(reconnect_delay(3, max), Duration::from_millis(100));
        assert_eq!(reconnect_delay(60, max), max);
    }
}
