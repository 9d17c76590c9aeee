//! Errors of the relay (publishing) and of its subscribers.

use async_nats::jetstream::context::{CreateStreamError, PublishError};

use crate::error::FeedError;

/// Publishing to NATS failed; the relay's batch is rolled back and retried, nothing is
/// checkpointed past the event named.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The NATS URL is invalid, or (for [`super::connect`]) no server answered.
    #[error("could not connect to NATS at {url}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    /// NATS or JetStream is not usable right now (disconnected, or the last publish or
    /// probe failed); the relay refuses at once instead of waiting inside its batch
    /// transaction, and a background probe finds out when it is back.
    #[error("NATS is unavailable ({reason})")]
    Unavailable { reason: String },
    /// Creating or updating the stream failed.
    #[error("could not create or update the JetStream stream {stream}")]
    Stream {
        stream: String,
        #[source]
        source: CreateStreamError,
    },
    /// An envelope could not be serialised.
    #[error("could not encode event {global_position}")]
    Encode {
        global_position: i64,
        #[source]
        source: serde_json::Error,
    },
    /// Sending the event or receiving its acknowledgement failed (timeout, connection
    /// lost, refused by JetStream, or out of order after an earlier failure).
    #[error("publishing event {global_position} failed")]
    Publish {
        global_position: i64,
        #[source]
        source: PublishError,
    },
}

impl RelayError {
    /// The event the error is about, if any.
    pub fn global_position(&self) -> Option<i64> {
        match self {
            Self::Encode {
                global_position, ..
            }
            | Self::Publish {
                global_position, ..
            } => Some(*global_position),
            _ => None,
        }
    }
}

/// Subscribing to relayed events failed, or a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// A JetStream request (stream info, consumer create) or the message flow failed.
    #[error("JetStream {operation} failed")]
    Nats {
        operation: &'static str,
        #[source]
        source: async_nats::Error,
    },
    /// A message's body is not an [`super::Envelope`] (not published by the relay). The
    /// stream goes on after this item.
    #[error("message {stream_sequence} is not an event envelope")]
    Decode {
        stream_sequence: u64,
        #[source]
        source: serde_json::Error,
    },
    /// `StartFrom::AfterPosition`: the stream holds no event with this global position
    /// for the subscription's filter (never relayed, or already removed by retention).
    #[error("the stream holds no event with global position {0}")]
    PositionNotFound(i64),
    /// A durable consumer of this name exists with another filter.
    #[error("durable consumer {name} exists with filter {existing:?}, not {wanted:?}")]
    DurableMismatch {
        name: String,
        existing: String,
        wanted: String,
    },
}

impl SubscribeError {
    pub(crate) fn nats(operation: &'static str, source: impl Into<async_nats::Error>) -> Self {
        Self::Nats {
            operation,
            source: source.into(),
        }
    }
}

/// Resuming a client's event stream (PostgreSQL backlog, then NATS) failed or ended.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// `Last-Event-ID` names no committed event.
    #[error("no committed event has global position {0}")]
    UnknownLastEventId(i64),
    /// Reading the backlog from PostgreSQL failed.
    #[error("reading the event backlog failed")]
    Feed(#[from] FeedError),
    /// Subscribing to NATS or reading from it failed.
    #[error("the live event subscription failed")]
    Live(#[from] SubscribeError),
    /// Events relayed since the resume started were already removed from the stream by its
    /// retention limits, so the live part would have a gap. Reconnect to resume from
    /// PostgreSQL again.
    #[error("the stream no longer holds events from sequence {needed} (it starts at {first})")]
    Expired { needed: u64, first: u64 },
    /// The client fell more than the allowed number of events behind the live stream; the
    /// stream ends instead of buffering. Reconnect with `Last-Event-ID` to catch up from
    /// PostgreSQL.
    #[error("the client is {pending} events behind the live stream (limit {limit})")]
    SlowConsumer { pending: u64, limit: u64 },
}
