//! What a relayed event looks like on NATS: the JSON [`Envelope`] body and the headers.
//!
//! Look headers up with `HeaderName::from_static(HEADER_…)`: async-nats parses well-known
//! names such as `Nats-Msg-Id` into its own representation, which a plain `&str` key does
//! not match.

use std::borrow::Cow;

use async_nats::{HeaderMap, HeaderName};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::StoredEvent;
use crate::event_metadata::EventMetadata;
use crate::position::Position;

use super::subject::subject_for;

/// `Nats-Msg-Id`: the global position. JetStream drops a second message with the same id
/// within the stream's duplicate window, so a re-send after a crash is not stored twice.
pub const HEADER_MSG_ID: &str = "Nats-Msg-Id";
/// The event type, e.g. `ModelPublished` or `CommandRejected`.
pub const HEADER_EVENT_TYPE: &str = "Flowable-Event-Type";
/// The stored event version, e.g. `1.0`.
pub const HEADER_EVENT_VERSION: &str = "Flowable-Event-Version";
/// `ProcessModel` or `CommandRejection`.
pub const HEADER_AGGREGATE_TYPE: &str = "Flowable-Aggregate-Type";
/// The aggregate id (unsanitised, unlike the subject token).
pub const HEADER_AGGREGATE_ID: &str = "Flowable-Aggregate-Id";
/// The event's sequence number within its aggregate (1, 2, …).
pub const HEADER_SEQUENCE: &str = "Flowable-Sequence";
/// The tenant (unsanitised); absent when the event has none.
pub const HEADER_TENANT_ID: &str = "Flowable-Tenant-Id";
/// The event's global position (the same value as `Nats-Msg-Id`).
pub const HEADER_GLOBAL_POSITION: &str = "Flowable-Global-Position";
/// The appending transaction's id: with the global position, the event's place in the
/// feed ([`Position`]), which is the order the relay publishes in.
pub const HEADER_TX_ID: &str = "Flowable-Tx-Id";
/// The request's correlation id (`X-Request-Id`); absent when the event has none.
pub const HEADER_CORRELATION_ID: &str = "Flowable-Correlation-Id";
/// `true` when the payload (and possibly the metadata) was left out because the message
/// would exceed the server's maximum payload; read the event from the API instead.
pub const HEADER_PAYLOAD_OMITTED: &str = "Flowable-Payload-Omitted";
/// `Content-Type`: always `application/json`.
pub const HEADER_CONTENT_TYPE: &str = "Content-Type";

const AGGREGATE_REJECTION: &str = "CommandRejection";
const PAYLOAD_TENANT_ID: &str = "tenantId";

/// The body of every relayed message, and what the SSE endpoint sends as `data`.
///
/// JSON, camelCase:
///
/// | field | type | meaning |
/// |---|---|---|
/// | `globalPosition` | integer | the event's global position: unique, the SSE `id`; not commit order |
/// | `aggregateType` | string | `ProcessModel` or `CommandRejection` |
/// | `aggregateId` | string | the model's UUID, or the rejection's id |
/// | `sequence` | integer | 1, 2, … within the aggregate |
/// | `eventType` | string | e.g. `ModelCreated`, `ModelPublished`, `CommandRejected` |
/// | `eventVersion` | string | the stored version of the event's shape, e.g. `1.0` |
/// | `tenantId` | string or null | metadata `tenant_id`; for `CommandRejected` the payload's `tenantId` first |
/// | `correlationId` | string or null | metadata `correlation_id` (the request's `X-Request-Id`) |
/// | `recordedAt` | string | RFC 3339 time the event was stored |
/// | `payload` | object or null | the event as stored: `{"<EventType>": {…}}` for `ProcessModel` events, the record itself for `CommandRejected`; null when omitted |
/// | `metadata` | object or null | as stored: `user_id`, `tenant_id`, `client_ip`, `user_agent`, `correlation_id`, `command`, `time` |
/// | `payloadOmitted` | boolean, only when true | the message would have exceeded the NATS maximum payload, so `payload` (and, if still too large, `metadata`) is null |
///
/// Old event versions are published as stored (no upcasting): consumers read
/// `eventVersion`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub global_position: i64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub tenant_id: Option<String>,
    pub correlation_id: Option<String>,
    pub recorded_at: DateTime<Utc>,
    pub payload: Value,
    pub metadata: Value,
    #[serde(default, skip_serializing_if = "is_false")]
    pub payload_omitted: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl Envelope {
    /// The envelope of a stored event.
    pub fn from_stored(event: &StoredEvent) -> Self {
        let (tenant_id, correlation_id) = tenant_and_correlation(event);
        Self {
            global_position: event.global_position,
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
            sequence: event.sequence,
            event_type: event.event_type.clone(),
            event_version: event.event_version.clone(),
            tenant_id,
            correlation_id,
            recorded_at: event.recorded_at,
            payload: event.payload.value().clone(),
            metadata: event.metadata.value().clone(),
            payload_omitted: false,
        }
    }

    /// The subject this envelope is published on.
    pub fn subject(&self, prefix: &str) -> String {
        subject_for(
            prefix,
            self.tenant_id.as_deref(),
            &self.aggregate_type,
            &self.aggregate_id,
        )
    }
}

/// The fields of an [`Envelope`] before `payload`, borrowed from a stored event. The body
/// is these, serialised, then the event's payload and metadata spliced in as the store
/// holds their text ([`envelope_json`]): the same fields in the same order as [`Envelope`], without
/// decoding and encoding the JSON the relay only passes on.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeHead<'a> {
    global_position: i64,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    sequence: i64,
    event_type: &'a str,
    event_version: &'a str,
    tenant_id: Option<String>,
    correlation_id: Option<String>,
    recorded_at: DateTime<Utc>,
}

impl<'a> EnvelopeHead<'a> {
    fn from_stored(event: &'a StoredEvent) -> Self {
        let (tenant_id, correlation_id) = tenant_and_correlation(event);
        Self {
            global_position: event.global_position,
            aggregate_type: &event.aggregate_type,
            aggregate_id: &event.aggregate_id,
            sequence: event.sequence,
            event_type: &event.event_type,
            event_version: &event.event_version,
            tenant_id,
            correlation_id,
            recorded_at: event.recorded_at,
        }
    }
}

/// The envelope JSON: `head`'s fields, then `payload` and `metadata` (JSON text; `None` is
/// `null`), then `payloadOmitted` when true.
fn envelope_json(
    head: &EnvelopeHead<'_>,
    payload: Option<&str>,
    metadata: Option<&str>,
    payload_omitted: bool,
) -> Result<Vec<u8>, serde_json::Error> {
    const NULL: &str = "null";
    let payload = payload.unwrap_or(NULL);
    let metadata = metadata.unwrap_or(NULL);
    let mut body = Vec::with_capacity(320 + payload.len() + metadata.len());
    serde_json::to_writer(&mut body, head)?;
    // An object: drop its closing brace and go on with the remaining fields.
    debug_assert_eq!(body.last(), Some(&b'}'));
    body.pop();
    body.extend_from_slice(b",\"payload\":");
    body.extend_from_slice(payload.as_bytes());
    body.extend_from_slice(b",\"metadata\":");
    body.extend_from_slice(metadata.as_bytes());
    if payload_omitted {
        body.extend_from_slice(b",\"payloadOmitted\":true");
    }
    body.push(b'}');
    Ok(body)
}

/// The tenant an event belongs to: for a rejection record (aggregate `CommandRejection`)
/// the payload's `tenantId`, else (or when that is missing) the metadata's `tenant_id`.
/// The backlog query ([`super::backlog_after`]) applies the same rule in SQL.
pub fn tenant_of(event: &StoredEvent) -> Option<String> {
    tenant_and_correlation(event).0
}

/// The event's tenant ([`tenant_of`]) and its request's correlation id, from one read of
/// the metadata.
fn tenant_and_correlation(event: &StoredEvent) -> (Option<String>, Option<String>) {
    let meta = EventMetadata::of(event);
    let from_payload = if event.aggregate_type == AGGREGATE_REJECTION {
        str_at(&event.payload, PAYLOAD_TENANT_ID).map(str::to_owned)
    } else {
        None
    };
    (from_payload.or(meta.tenant_id), meta.correlation_id)
}

fn str_at<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// Header values may not contain line breaks; stored values are not trusted to lack them.
fn header_value(value: &str) -> Cow<'_, str> {
    if value.contains(['\r', '\n']) {
        Cow::Owned(value.replace(['\r', '\n'], " "))
    } else {
        Cow::Borrowed(value)
    }
}

/// A message ready to publish: subject, headers and JSON body.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) subject: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    pub(crate) payload_omitted: bool,
}

impl Outgoing {
    /// Builds the message for `event`. If headers and body together would exceed
    /// `max_payload` bytes (the server's limit: a larger message would make the server
    /// close the connection), the payload and then the metadata are left out.
    pub(crate) fn build(
        event: &StoredEvent,
        prefix: &str,
        max_payload: usize,
    ) -> Result<Self, serde_json::Error> {
        let envelope = EnvelopeHead::from_stored(event);
        let subject = subject_for(
            prefix,
            envelope.tenant_id.as_deref(),
            envelope.aggregate_type,
            envelope.aggregate_id,
        );
        let mut headers = HeaderMap::new();
        let mut add = |name: &'static str, value: &str| {
            headers.insert(HeaderName::from_static(name), header_value(value).as_ref());
        };
        let position = event.global_position.to_string();
        add(HEADER_MSG_ID, &position);
        add(HEADER_GLOBAL_POSITION, &position);
        add(HEADER_TX_ID, &event.tx_id.to_string());
        add(HEADER_EVENT_TYPE, envelope.event_type);
        add(HEADER_EVENT_VERSION, envelope.event_version);
        add(HEADER_AGGREGATE_TYPE, envelope.aggregate_type);
        add(HEADER_AGGREGATE_ID, envelope.aggregate_id);
        add(HEADER_SEQUENCE, &envelope.sequence.to_string());
        if let Some(tenant) = envelope.tenant_id.as_deref() {
            add(HEADER_TENANT_ID, tenant);
        }
        if let Some(correlation) = envelope.correlation_id.as_deref() {
            add(HEADER_CORRELATION_ID, correlation);
        }
        add(HEADER_CONTENT_TYPE, "application/json");
        // Room for the expected-last-message-id header the publisher may add.
        let header_bytes = headers_len(&headers) + 64;
        let fits = |body: &[u8]| header_bytes + subject.len() + body.len() <= max_payload;

        let payload = event.payload.as_text();
        let metadata = event.metadata.as_text();
        let mut body = envelope_json(&envelope, Some(payload), Some(metadata), false)?;
        let payload_omitted = !fits(&body);
        if payload_omitted {
            body = envelope_json(&envelope, None, Some(metadata), true)?;
            if !fits(&body) {
                body = envelope_json(&envelope, None, None, true)?;
            }
            headers.insert(HeaderName::from_static(HEADER_PAYLOAD_OMITTED), "true");
        }
        Ok(Self {
            subject,
            headers,
            body,
            payload_omitted,
        })
    }
}

/// Bytes the headers take on the wire (`NATS/1.0\r\n`, `Name: value\r\n` each, `\r\n`).
fn headers_len(headers: &HeaderMap) -> usize {
    let fields: usize = headers
        .iter()
        .map(|(name, values)| {
            let name: &str = name.as_ref();
            values
                .iter()
                .map(|value| name.len() + value.as_str().len() + 4)
                .sum::<usize>()
        })
        .sum();
    12 + fields
}

/// A relayed message as a subscriber decodes it.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) envelope: Envelope,
    /// The event's place in the feed, from [`HEADER_TX_ID`]; `None` if the header is
    /// missing or malformed (a message not published by the relay).
    pub(crate) position: Option<Position>,
}

impl Received {
    pub(crate) fn decode(
        headers: Option<&HeaderMap>,
        body: &[u8],
    ) -> Result<Self, serde_json::Error> {
        let envelope: Envelope = serde_json::from_slice(body)?;
        let position = headers
            .and_then(|headers| headers.get(HeaderName::from_static(HEADER_TX_ID)))
            .and_then(|value| value.as_str().parse::<u64>().ok())
            .map(|tx_id| Position::new(tx_id, envelope.global_position));
        Ok(Self { envelope, position })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::StoredJson;

    fn stored(aggregate_type: &str, payload: Value, metadata: Value) -> StoredEvent {
        StoredEvent {
            global_position: 42,
            tx_id: 7_000_000_123,
            aggregate_type: aggregate_type.into(),
            aggregate_id: "m.1".into(),
            sequence: 3,
            event_type: "ModelPublished".into(),
            event_version: "1.0".into(),
            payload: payload.into(),
            metadata: metadata.into(),
            recorded_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    fn model_event() -> StoredEvent {
        stored(
            "ProcessModel",
            json!({"ModelPublished": {"version": 1, "comment": null}}),
            json!({"tenant_id": "acme", "correlation_id": "req-1", "user_id": "u"}),
        )
    }

    #[test]
    fn envelope_json_is_camel_case_with_every_documented_field() {
        let value = serde_json::to_value(Envelope::from_stored(&model_event())).expect("json");
        let mut keys: Vec<&str> = value
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "aggregateId",
                "aggregateType",
                "correlationId",
                "eventType",
                "eventVersion",
                "globalPosition",
                "metadata",
                "payload",
                "recordedAt",
                "sequence",
                "tenantId"
            ]
        );
        assert_eq!(value["tenantId"], "acme");
        assert_eq!(value["recordedAt"], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn rejections_take_the_tenant_from_the_payload_first() {
        let mut event = stored(
            "CommandRejection",
            json!({"tenantId": "from-payload", "command": "PublishModel"}),
            json!({"tenant_id": "from-metadata"}),
        );
        assert_eq!(tenant_of(&event).as_deref(), Some("from-payload"));
        event.payload = json!({"tenantId": null}).into();
        assert_eq!(tenant_of(&event).as_deref(), Some("from-metadata"));
        event.metadata = json!({}).into();
        assert_eq!(tenant_of(&event), None);
        // A model event's payload never decides the tenant.
        let mut model = model_event();
        model.payload = json!({"tenantId": "nope"}).into();
        assert_eq!(tenant_of(&model).as_deref(), Some("acme"));
    }

    #[test]
    fn outgoing_message_carries_the_headers_and_round_trips() {
        let event = model_event();
        let out = Outgoing::build(&event, "flowable.events", 1024 * 1024).expect("build");
        assert_eq!(out.subject, "flowable.events.acme.ProcessModel.m_1");
        let get = |name: &'static str| {
            out.headers
                .get(HeaderName::from_static(name))
                .map(|value| value.as_str().to_owned())
                .unwrap_or_default()
        };
        assert_eq!(get(HEADER_MSG_ID), "42");
        assert_eq!(get(HEADER_GLOBAL_POSITION), "42");
        assert_eq!(get(HEADER_TX_ID), "7000000123");
        assert_eq!(get(HEADER_EVENT_TYPE), "ModelPublished");
        assert_eq!(get(HEADER_EVENT_VERSION), "1.0");
        assert_eq!(get(HEADER_AGGREGATE_ID), "m.1");
        assert_eq!(get(HEADER_SEQUENCE), "3");
        assert_eq!(get(HEADER_TENANT_ID), "acme");
        assert_eq!(get(HEADER_CORRELATION_ID), "req-1");
        assert!(out
            .headers
            .get(HeaderName::from_static(HEADER_PAYLOAD_OMITTED))
            .is_none());

        let received = Received::decode(Some(&out.headers), &out.body).expect("decode");
        assert_eq!(received.envelope, Envelope::from_stored(&event));
        assert_eq!(received.position, Some(event.position()));
    }

    #[test]
    fn a_stored_payload_is_spliced_into_the_body_as_its_text() {
        let mut event = model_event();
        event.payload = StoredJson::from_store(
            r#"{"ModelPublished": {"comment": null, "version": 1}}"#.to_owned(),
        );
        event.metadata =
            StoredJson::from_store(r#"{"user_id": "u", "tenant_id": "acme"}"#.to_owned());
        let out = Outgoing::build(&event, "p", 1024 * 1024).expect("build");
        let text = String::from_utf8(out.body.clone()).expect("UTF-8");
        assert!(
            text.ends_with(
                r#","payload":{"ModelPublished": {"comment": null, "version": 1}},"metadata":{"user_id": "u", "tenant_id": "acme"}}"#
            ),
            "{text}"
        );
        let received = Received::decode(Some(&out.headers), &out.body).expect("decode");
        assert_eq!(received.envelope, Envelope::from_stored(&event));
        assert_eq!(received.envelope.tenant_id.as_deref(), Some("acme"));
    }

    #[test]
    fn the_body_is_the_envelope_json_byte_for_byte() {
        let mut event = model_event();
        let out = Outgoing::build(&event, "p", 1024 * 1024).expect("build");
        let expected = serde_json::to_vec(&Envelope::from_stored(&event)).expect("json");
        assert_eq!(out.body, expected);

        let mut rejection = stored(
            "CommandRejection",
            json!({"tenantId": "from-payload"}),
            json!({}),
        );
        rejection.event_type = "CommandRejected".into();
        let out = Outgoing::build(&rejection, "p", 1024 * 1024).expect("build");
        let expected = serde_json::to_vec(&Envelope::from_stored(&rejection)).expect("json");
        assert_eq!(out.body, expected);

        event.payload = json!({"ModelJsonReplaced": {"modelJson": "x".repeat(10_000)}}).into();
        let out = Outgoing::build(&event, "p", 4_096).expect("build");
        let mut omitted = Envelope::from_stored(&event);
        omitted.payload = Value::Null;
        omitted.payload_omitted = true;
        assert_eq!(out.body, serde_json::to_vec(&omitted).expect("json"));
    }

    #[test]
    fn line_breaks_never_reach_a_header() {
        let mut event = model_event();
        event.metadata = json!({"tenant_id": "acme", "correlation_id": "a\r\nInjected: 1"}).into();
        let out = Outgoing::build(&event, "p", 1024 * 1024).expect("build");
        let value = out
            .headers
            .get(HeaderName::from_static(HEADER_CORRELATION_ID))
            .expect("header");
        assert_eq!(value.as_str(), "a  Injected: 1");
    }

    #[test]
    fn oversized_payloads_are_left_out_not_refused() {
        let mut event = model_event();
        event.payload = json!({"ModelJsonReplaced": {"modelJson": "x".repeat(10_000)}}).into();
        let out = Outgoing::build(&event, "p", 4_096).expect("build");
        assert!(out.payload_omitted);
        assert!(out.body.len() < 4_096);
        let received = Received::decode(Some(&out.headers), &out.body).expect("decode");
        assert!(received.envelope.payload_omitted);
        assert_eq!(received.envelope.payload, Value::Null);
        assert_eq!(received.envelope.metadata["tenant_id"], "acme");

        event.metadata = json!({"tenant_id": "acme", "user_agent": "y".repeat(10_000)}).into();
        let out = Outgoing::build(&event, "p", 4_096).expect("build");
        let received = Received::decode(Some(&out.headers), &out.body).expect("decode");
        assert_eq!(received.envelope.metadata, Value::Null);
        assert_eq!(received.envelope.tenant_id.as_deref(), Some("acme"));
    }
}
