//! One event as the feed delivers it.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::error::{FeedError, ProjectionError};
use crate::position::Position;
use crate::stored_json::StoredJson;

/// A committed row of `events`, with its place in the feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    pub global_position: i64,
    /// The appending transaction's id (`xid8`).
    pub tx_id: u64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    /// As stored; decoded only where it is read (see [`StoredJson`]).
    pub payload: StoredJson,
    pub metadata: StoredJson,
    pub recorded_at: DateTime<Utc>,
}

impl StoredEvent {
    /// The event's place in the feed; a consumer that has processed this event stores it as
    /// its checkpoint.
    pub fn position(&self) -> Position {
        Position::new(self.tx_id, self.global_position)
    }

    /// The payload as `T` (postgres-es stores it as `{"VariantName": {...}}`), decoded
    /// from the stored text.
    pub fn decode_payload<T: DeserializeOwned>(&self) -> Result<T, ProjectionError> {
        self.decode(&self.payload)
    }

    /// The metadata as `T`.
    pub fn decode_metadata<T: DeserializeOwned>(&self) -> Result<T, ProjectionError> {
        self.decode(&self.metadata)
    }

    fn decode<T: DeserializeOwned>(&self, json: &StoredJson) -> Result<T, ProjectionError> {
        serde_json::from_str(json.as_text()).map_err(|source| ProjectionError::Decode {
            global_position: self.global_position,
            event_type: self.event_type.clone(),
            source,
        })
    }

    /// Decodes a row selected with [`EVENT_COLUMNS`].
    pub(crate) fn from_row(row: &PgRow) -> Result<Self, FeedError> {
        Ok(Self {
            global_position: row.try_get("global_position")?,
            tx_id: parse_tx_id(row.try_get("tx_id_text")?)?,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            payload: StoredJson::from_store(row.try_get("payload")?),
            metadata: StoredJson::from_store(row.try_get("metadata")?),
            recorded_at: row.try_get("recorded_at")?,
        })
    }
}

/// The select list [`StoredEvent::from_row`] expects. sqlx has no `xid8` type, so the
/// transaction id travels as text; so do the JSON columns, decoded only where read.
pub(crate) const EVENT_COLUMNS: &str =
    "global_position, tx_id::text AS tx_id_text, aggregate_type, aggregate_id, sequence, \
     event_type, event_version, payload::text AS payload, metadata::text AS metadata, \
     recorded_at";

/// An `xid8` selected as text.
pub(crate) fn parse_tx_id(text: &str) -> Result<u64, FeedError> {
    text.parse()
        .map_err(|_| FeedError::InvalidTxId(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_64_bit_transaction_ids() {
        assert_eq!(parse_tx_id("18446744073709551615").ok(), Some(u64::MAX));
        assert!(matches!(parse_tx_id("-1"), Err(FeedError::InvalidTxId(_))));
    }

    #[test]
    fn decode_errors_name_the_event() {
        let event = StoredEvent {
            global_position: 9,
            tx_id: 700,
            aggregate_type: "ProcessModel".into(),
            aggregate_id: "a".into(),
            sequence: 1,
            event_type: "ModelCreated".into(),
            event_version: "1.0".into(),
            payload: serde_json::json!({"ModelCreated": {}}).into(),
            metadata: serde_json::json!({}).into(),
            recorded_at: DateTime::<Utc>::UNIX_EPOCH,
        };
        assert_eq!(event.position(), Position::new(700, 9));
        match event.decode_payload::<u32>() {
            Err(ProjectionError::Decode {
                global_position, ..
            }) => assert_eq!(global_position, 9),
            other => panic!("expected a decode error, got {other:?}"),
        }
    }
}
