//! The metadata fields the projections read (who, when, which tenant, which request), from
//! the stored JSON text without building its tree (a `serde_json::Value` per event was a
//! good part of the audit projector's and the relay's work). Text these readers do not read
//! as the tree would is left to the tree, so every reader sees what the tree gives.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use crate::event::StoredEvent;

/// The metadata fields the projections read: a string is kept, any other value counts as
/// absent (as `Value::as_str` gives them).
#[derive(Debug, Default, PartialEq, Deserialize)]
pub(crate) struct EventMetadata {
    #[serde(default, deserialize_with = "string_only")]
    pub(crate) user_id: Option<String>,
    #[serde(default, deserialize_with = "string_only")]
    pub(crate) client_ip: Option<String>,
    #[serde(default, deserialize_with = "string_only")]
    pub(crate) user_agent: Option<String>,
    #[serde(default, deserialize_with = "string_only")]
    pub(crate) tenant_id: Option<String>,
    #[serde(default, deserialize_with = "string_only")]
    pub(crate) correlation_id: Option<String>,
    #[serde(default, deserialize_with = "string_only")]
    pub(crate) command: Option<String>,
    #[serde(default, deserialize_with = "string_only")]
    pub(crate) time: Option<String>,
}

impl EventMetadata {
    pub(crate) fn of(event: &StoredEvent) -> Self {
        let text = event.metadata.as_text();
        // Only an object is read from the text: a derived struct would also take an array
        // as its fields in order, where the tree has no keys. A duplicate key is an error
        // here, where the tree keeps the last: both are left to the tree.
        if !text.trim_start().starts_with('{') {
            return Self::from_tree(&event.metadata);
        }
        serde_json::from_str(text).unwrap_or_else(|_| Self::from_tree(&event.metadata))
    }

    fn from_tree(metadata: &Value) -> Self {
        let text = |key: &str| metadata.get(key).and_then(Value::as_str).map(str::to_owned);
        Self {
            user_id: text("user_id"),
            client_ip: text("client_ip"),
            user_agent: text("user_agent"),
            tenant_id: text("tenant_id"),
            correlation_id: text("correlation_id"),
            command: text("command"),
            time: text("time"),
        }
    }
}

/// A string as `Some`, any other JSON value (skipped unbuilt) as `None`.
fn string_only<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    struct StringOnly;

    impl<'de> Visitor<'de> for StringOnly {
        type Value = Option<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
            Ok(Some(value.to_owned()))
        }

        fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
            Ok(Some(value))
        }

        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }

    deserializer.deserialize_any(StringOnly)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Both readers agree on every shape, including the odd ones.
    #[test]
    fn the_text_reader_gives_what_the_tree_gives() {
        let metadata = [
            json!({"user_id": "u", "tenant_id": 5, "command": ["x"], "time": {"a": 1}, "extra": "e"}),
            json!({"client_ip": null, "user_agent": "ua", "correlation_id": "c"}),
            json!([1]),
            json!(["u"]),
            json!(null),
        ];
        for value in metadata {
            assert_eq!(
                EventMetadata::of(&with_metadata(value.to_string())),
                EventMetadata::from_tree(&value),
                "{value}"
            );
        }
        let duplicate = with_metadata(r#"{"user_id": "a", "user_id": "b"}"#.to_owned());
        assert_eq!(EventMetadata::of(&duplicate).user_id.as_deref(), Some("b"));
    }

    fn with_metadata(text: String) -> StoredEvent {
        StoredEvent {
            global_position: 1,
            tx_id: 1,
            aggregate_type: "ProcessModel".into(),
            aggregate_id: "a".into(),
            sequence: 1,
            event_type: "ModelPublished".into(),
            event_version: "1.0".into(),
            payload: json!({}).into(),
            metadata: crate::StoredJson::from_store(text),
            recorded_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        }
    }
}
