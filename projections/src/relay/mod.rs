//! The event fan-out over NATS JetStream.
//!
//! - [`NatsRelay`]: a feed consumer, run by a [`crate::ProjectorRunner`] (one active
//!   replica, fail-over), that publishes every stored event (domain events and
//!   `CommandRejected` records) to the stream [`DEFAULT_STREAM`] on
//!   `<prefix>.<tenant>.<aggregate_type>.<aggregate_id>` ([`subject_for`]), with
//!   `Nats-Msg-Id` = global position, and checkpoints only what JetStream acknowledged.
//!   PostgreSQL stays the record: NATS down or slow delays the fan-out, never a command.
//! - [`ensure_stream`]: creates or updates the stream from [`RelaySettings`].
//! - [`subscribe_live`] / [`subscribe_durable`]: the subscriber side (`events tail`).
//! - [`resume_stream`]: the SSE seam, a tenant's backlog from PostgreSQL after
//!   `Last-Event-ID`, then live from NATS, each event once ([`backlog_after`] alone reads
//!   the backlog).
//!
//! Body: the [`Envelope`] as JSON; headers: the `HEADER_*` constants.

mod backlog;
pub mod envelope;
mod error;
mod publisher;
mod resume;
mod settings;
mod status;
mod subject;
mod subscribe;

pub use backlog::backlog_after;
pub use envelope::{
    tenant_of, Envelope, HEADER_AGGREGATE_ID, HEADER_AGGREGATE_TYPE, HEADER_CONTENT_TYPE,
    HEADER_CORRELATION_ID, HEADER_EVENT_TYPE, HEADER_EVENT_VERSION, HEADER_GLOBAL_POSITION,
    HEADER_MSG_ID, HEADER_PAYLOAD_OMITTED, HEADER_SEQUENCE, HEADER_TENANT_ID, HEADER_TX_ID,
};
pub use error::{RelayError, ResumeError, SubscribeError};
pub use publisher::{NatsRelay, RELAY_NAME};
pub use resume::{resume_stream, ResumeEvents, ResumeOptions};
pub use settings::{connect, ensure_stream, RelaySettings, DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX};
pub use status::{RelayState, RelayStatus, RelayStatusHandle};
pub use subject::{sanitize_token, subject_for, tenant_filter, EMPTY_TOKEN};
pub use subscribe::{subscribe_durable, subscribe_live, LiveEvents, StartFrom};
