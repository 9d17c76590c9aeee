//! Reading relayed events from JetStream: an ephemeral ordered consumer for live
//! subscribers (SSE, `events tail`), or a durable one (`events tail --durable <name>`).

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::{self, Message};
use futures::stream::{self, BoxStream};
use futures::StreamExt as _;

use super::envelope::{Envelope, Received};
use super::error::SubscribeError;
use super::settings::RelaySettings;
use super::subject::tenant_filter;

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// The oldest event the stream still holds.
    Beginning,
    /// Only events relayed after the subscription starts.
    New,
    /// The events the stream holds after the one with this global position, in stream
    /// order (the relay's publish order, which is feed order). Global positions are not
    /// commit order, so this is not "every position greater than": the subscription reads
    /// the stream from its start and skips up to and including that event; if the stream
    /// does not hold it (for this subscription's tenant), the subscription fails with
    /// [`SubscribeError::PositionNotFound`]. Cost grows with the stream's length: to resume
    /// a client, prefer [`super::resume_stream`], which starts from PostgreSQL.
    AfterPosition(i64),
}

/// Messages a durable subscription fetches ahead of the caller.
const DURABLE_PREFETCH: usize = 20;
/// How long one pull request of a durable subscription stays open on the server.
const DURABLE_PULL_EXPIRES: Duration = Duration::from_secs(5);
/// How long a durable consumer waits for an acknowledgement before delivering again.
const DURABLE_ACK_WAIT: Duration = Duration::from_secs(10);

/// Decoded events; an `Err` item for a message that is not an envelope is followed by
/// more events, any other `Err` item is the last.
pub type LiveEvents = BoxStream<'static, Result<Envelope, SubscribeError>>;

/// A decoded message and where it sits in the stream.
pub(crate) struct Delivered {
    pub(crate) received: Received,
    pub(crate) stream_sequence: u64,
    /// Messages after this one that match the consumer's filter.
    pub(crate) pending: u64,
}

/// An ordered (ephemeral, in-memory, flow-controlled) consumer of `tenant`'s subjects (all
/// tenants for `None`), from stream sequence `from_sequence` (`None`: the beginning).
/// Returns the decoded messages and how many messages matched the filter at creation.
///
/// Messages with a stream sequence below `from_sequence` are dropped here: when async-nats
/// re-creates an ordered consumer before it has delivered anything, it starts from the
/// stream's beginning rather than from the configured start.
pub(crate) async fn ordered(
    js: &jetstream::Context,
    settings: &RelaySettings,
    tenant: Option<&str>,
    from_sequence: Option<u64>,
) -> Result<(BoxStream<'static, Result<Delivered, SubscribeError>>, u64), SubscribeError> {
    let stream = js
        .get_stream(&settings.stream)
        .await
        .map_err(|error| SubscribeError::nats("stream lookup", error))?;
    let deliver_policy = match from_sequence {
        Some(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
        None => DeliverPolicy::All,
    };
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: tenant_filter(&settings.subject_prefix, tenant),
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|error| SubscribeError::nats("consumer create", error))?;
    let matching = consumer.cached_info().num_pending;
    let messages = consumer
        .messages()
        .await
        .map_err(|error| SubscribeError::nats("consumer subscribe", error))?;
    let floor = from_sequence.unwrap_or(0);
    let deliveries = messages
        .filter_map(move |item| {
            let delivered = match item {
                Ok(message) => decode(&message).transpose(),
                Err(error) => Some(Err(SubscribeError::nats("message delivery", error))),
            };
            let keep = match &delivered {
                Some(Ok(delivered)) => delivered.stream_sequence >= floor,
                _ => true,
            };
            futures::future::ready(delivered.filter(|_| keep))
        })
        .boxed();
    Ok((deliveries, matching))
}

/// `Ok(None)` for a message without JetStream metadata (not from a consumer).
fn decode(message: &Message) -> Result<Option<Delivered>, SubscribeError> {
    let Ok(info) = message.info() else {
        return Ok(None);
    };
    let stream_sequence = info.stream_sequence;
    let pending = info.pending;
    let received =
        Received::decode(message.headers.as_ref(), &message.payload).map_err(|source| {
            SubscribeError::Decode {
                stream_sequence,
                source,
            }
        })?;
    Ok(Some(Delivered {
        received,
        stream_sequence,
        pending,
    }))
}

/// Whether an envelope belongs to the subscription's tenant. Subjects carry sanitised
/// tenants (`a.b` and `a_b` share a token), so the envelope's own `tenantId` decides.
pub(crate) fn tenant_matches(tenant: Option<&str>, envelope: &Envelope) -> bool {
    tenant.is_none_or(|tenant| envelope.tenant_id.as_deref() == Some(tenant))
}

/// Live events for one tenant (`None`: all tenants) from `start`, through an ephemeral
/// ordered consumer (in memory, no acks, re-created by the client after a gap or a NATS
/// restart, removed by the server when the subscriber goes away). Events come in stream
/// order, which is the relay's publish order (feed order). Subjects are filtered by the
/// sanitised tenant token and envelopes by their exact `tenantId`.
pub async fn subscribe_live(
    js: &jetstream::Context,
    settings: &RelaySettings,
    tenant: Option<&str>,
    start: StartFrom,
) -> Result<LiveEvents, SubscribeError> {
    let from_sequence = match start {
        StartFrom::Beginning | StartFrom::AfterPosition(_) => None,
        StartFrom::New => Some(last_sequence(js, settings).await? + 1),
    };
    let (deliveries, matching) = ordered(js, settings, tenant, from_sequence).await?;
    let skip_until = match start {
        StartFrom::AfterPosition(position) if matching == 0 => {
            return Err(SubscribeError::PositionNotFound(position));
        }
        StartFrom::AfterPosition(position) => Some(position),
        _ => None,
    };
    let state = LiveState {
        deliveries,
        tenant: tenant.map(str::to_owned),
        skip_until,
        done: false,
    };
    Ok(stream::unfold(state, LiveState::next).boxed())
}

struct LiveState {
    deliveries: BoxStream<'static, Result<Delivered, SubscribeError>>,
    tenant: Option<String>,
    skip_until: Option<i64>,
    done: bool,
}

impl LiveState {
    async fn next(mut self) -> Option<(Result<Envelope, SubscribeError>, Self)> {
        if self.done {
            return None;
        }
        loop {
            let delivered = match self.deliveries.next().await? {
                Ok(delivered) => delivered,
                Err(error) => {
                    self.done = !matches!(error, SubscribeError::Decode { .. });
                    return Some((Err(error), self));
                }
            };
            let envelope = delivered.received.envelope;
            if let Some(marker) = self.skip_until {
                if envelope.global_position == marker {
                    self.skip_until = None;
                } else if delivered.pending == 0 {
                    self.done = true;
                    return Some((Err(SubscribeError::PositionNotFound(marker)), self));
                }
                continue;
            }
            if tenant_matches(self.tenant.as_deref(), &envelope) {
                return Some((Ok(envelope), self));
            }
        }
    }
}

/// The stream's last sequence now (0 when empty).
pub(crate) async fn last_sequence(
    js: &jetstream::Context,
    settings: &RelaySettings,
) -> Result<u64, SubscribeError> {
    Ok(stream_state(js, settings).await?.last_sequence)
}

pub(crate) async fn stream_state(
    js: &jetstream::Context,
    settings: &RelaySettings,
) -> Result<jetstream::stream::State, SubscribeError> {
    let stream = js
        .get_stream(&settings.stream)
        .await
        .map_err(|error| SubscribeError::nats("stream lookup", error))?;
    Ok(stream.cached_info().state.clone())
}

/// Events for one tenant (`None`: all) through the durable pull consumer `name`, which
/// remembers what it has delivered across runs (`events tail --durable <name>`). `start`
/// applies only when the consumer is created; an existing one resumes where it stopped,
/// and must have the same filter. Each event is acknowledged when the next one is
/// requested, so an event the caller had not finished with when it stopped is delivered
/// again next time (at least once): that one and the few fetched ahead come once the
/// consumer's ack wait (10 s) has passed, after newer events.
pub async fn subscribe_durable(
    js: &jetstream::Context,
    settings: &RelaySettings,
    tenant: Option<&str>,
    name: &str,
    start: StartFrom,
) -> Result<LiveEvents, SubscribeError> {
    let stream = js
        .get_stream(&settings.stream)
        .await
        .map_err(|error| SubscribeError::nats("stream lookup", error))?;
    let filter = tenant_filter(&settings.subject_prefix, tenant);
    let (consumer, skip_until) = match stream.consumer_info(name).await {
        Ok(info) => {
            if info.config.filter_subject != filter {
                return Err(SubscribeError::DurableMismatch {
                    name: name.to_owned(),
                    existing: info.config.filter_subject,
                    wanted: filter,
                });
            }
            let consumer = stream
                .get_consumer::<pull::Config>(name)
                .await
                .map_err(|error| SubscribeError::nats("consumer lookup", error))?;
            (consumer, None)
        }
        Err(error) if matches!(error.kind(), ConsumerInfoErrorKind::NotFound) => {
            let (deliver_policy, skip_until) = match start {
                StartFrom::Beginning => (DeliverPolicy::All, None),
                StartFrom::New => (DeliverPolicy::New, None),
                StartFrom::AfterPosition(position) => (DeliverPolicy::All, Some(position)),
            };
            let consumer = stream
                .create_consumer(pull::Config {
                    durable_name: Some(name.to_owned()),
                    description: Some("flowable-ui events tail".to_owned()),
                    filter_subject: filter,
                    deliver_policy,
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: DURABLE_ACK_WAIT,
                    ..Default::default()
                })
                .await
                .map_err(|error| SubscribeError::nats("consumer create", error))?;
            if let Some(position) = skip_until {
                if consumer.cached_info().num_pending == 0 {
                    return Err(SubscribeError::PositionNotFound(position));
                }
            }
            (consumer, skip_until)
        }
        Err(error) => return Err(SubscribeError::nats("consumer lookup", error)),
    };
    // A small prefetch and short pull requests: messages fetched but not handed out when
    // the subscriber stops are delivered again only after the consumer's ack wait.
    let messages = consumer
        .stream()
        .max_messages_per_batch(DURABLE_PREFETCH)
        .expires(DURABLE_PULL_EXPIRES)
        .heartbeat(DURABLE_PULL_EXPIRES / 4)
        .messages()
        .await
        .map_err(|error| SubscribeError::nats("consumer subscribe", error))?;
    let state = DurableState {
        messages: messages.boxed(),
        tenant: tenant.map(str::to_owned),
        skip_until,
        unacked: None,
        done: false,
    };
    Ok(stream::unfold(state, DurableState::next).boxed())
}

type PullMessages = BoxStream<'static, Result<Message, pull::MessagesError>>;

struct DurableState {
    messages: PullMessages,
    tenant: Option<String>,
    skip_until: Option<i64>,
    /// The last event handed out, acknowledged when the next one is asked for.
    unacked: Option<Message>,
    done: bool,
}

impl DurableState {
    async fn next(mut self) -> Option<(Result<Envelope, SubscribeError>, Self)> {
        if let Some(message) = self.unacked.take() {
            ack(&message).await;
        }
        if self.done {
            return None;
        }
        loop {
            let message = match self.messages.next().await? {
                Ok(message) => message,
                Err(error) => {
                    self.done = true;
                    return Some((Err(SubscribeError::nats("message delivery", error)), self));
                }
            };
            let delivered = match decode(&message) {
                Ok(Some(delivered)) => delivered,
                Ok(None) => continue,
                Err(error) => {
                    ack(&message).await;
                    return Some((Err(error), self));
                }
            };
            let envelope = delivered.received.envelope;
            if let Some(marker) = self.skip_until {
                ack(&message).await;
                if envelope.global_position == marker {
                    self.skip_until = None;
                } else if delivered.pending == 0 {
                    self.done = true;
                    return Some((Err(SubscribeError::PositionNotFound(marker)), self));
                }
                continue;
            }
            if !tenant_matches(self.tenant.as_deref(), &envelope) {
                ack(&message).await;
                continue;
            }
            self.unacked = Some(message);
            return Some((Ok(envelope), self));
        }
    }
}

/// Acknowledges; a lost ack only means the message is delivered again.
async fn ack(message: &Message) {
    if let Err(error) = message.ack().await {
        tracing::debug!(%error, "could not acknowledge an event message");
    }
}
