//! A JSON column of a stored event, kept as the store's text and decoded only when asked.
//!
//! Why: a `serde_json::Value` tree of an event carrying an editor document takes several
//! times the text's size and as long to build as the store takes to send it. Decoding
//! every event of a batch into one was half the relay's CPU when events carry editor JSON,
//! though the relay only copies the payload into its message body; a projector that wants
//! a typed event decodes it from the text directly ([`crate::StoredEvent::decode_payload`]).

use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// JSON text as the store holds it, with its [`Value`] decoded on first use (through
/// `Deref`).
///
/// Only the store's own text makes one ([`Self::from_store`]): PostgreSQL's `json` (or
/// `jsonb`) text, SQLite's `json_valid`-checked `TEXT`, so it always decodes. Anything else goes
/// through `From<Value>`.
#[derive(Clone)]
pub struct StoredJson {
    text: Box<str>,
    value: OnceLock<Value>,
}

impl StoredJson {
    /// JSON text the store guarantees to be valid.
    pub(crate) fn from_store(text: String) -> Self {
        Self {
            text: text.into_boxed_str(),
            value: OnceLock::new(),
        }
    }

    /// The JSON text as stored (PostgreSQL writes a space after each `:` and `,`).
    pub fn as_text(&self) -> &str {
        &self.text
    }

    /// The value, decoded now if no one asked before.
    pub fn value(&self) -> &Value {
        self.value.get_or_init(|| {
            serde_json::from_str(&self.text).unwrap_or_else(|error| {
                // The store checks every value it keeps; text that does not parse is a
                // corrupted store, not bad input, and must not pass for `null`.
                panic!(
                    "a stored JSON value does not parse ({error}): {}",
                    self.text
                )
            })
        })
    }
}

impl Deref for StoredJson {
    type Target = Value;

    fn deref(&self) -> &Value {
        self.value()
    }
}

impl From<Value> for StoredJson {
    fn from(value: Value) -> Self {
        Self {
            text: value.to_string().into_boxed_str(),
            value: OnceLock::from(value),
        }
    }
}

impl PartialEq for StoredJson {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text || self.value() == other.value()
    }
}

impl fmt::Debug for StoredJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for StoredJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for StoredJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_text_stays_as_stored_and_decodes_on_demand() {
        let stored = StoredJson::from_store(r#"{"a": [1, 2], "b": "x"}"#.to_owned());
        assert_eq!(stored.as_text(), r#"{"a": [1, 2], "b": "x"}"#);
        assert_eq!(stored["a"][1], 2);
        assert_eq!(stored, StoredJson::from(json!({"b": "x", "a": [1, 2]})));
        assert_eq!(
            serde_json::to_string(&stored).expect("serialize"),
            r#"{"a":[1,2],"b":"x"}"#
        );
    }
}
