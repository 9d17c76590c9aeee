//! The few fields of an event's body an audit row takes, read from the stored JSON text
//! without building its tree: a `ModelCreated` carries the whole editor document, of which
//! the row wants the version and the key. Text these readers do not read as the tree would
//! (a duplicate key) is left to the tree, so the rows, and their hashes, stay exactly what
//! reading the tree gives. The metadata's fields: [`crate::event_metadata`].

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Whether a field's value has the type it should have.
type Wanted = fn(&Value) -> bool;

/// The fields of an event's body that go into a row's details, each only with the type it
/// should have.
pub(super) const DETAIL_FIELDS: [(&str, Wanted); 4] = [
    ("version", Value::is_u64),
    ("sourceVersion", Value::is_u64),
    ("key", Value::is_string),
    ("comment", Value::is_string),
];

/// The [`DETAIL_FIELDS`] of `payload` (postgres-es stores `{"<EventType>": {…}}`; another
/// shape is read as the body itself), as the tree would give them.
pub(super) fn detail_fields(payload: &str, event_type: &str) -> Option<Map<String, Value>> {
    let mut de = serde_json::Deserializer::from_str(payload);
    let fields = Fields {
        event_type: Some(event_type),
    }
    .deserialize(&mut de)
    .ok()?;
    de.end().ok()?;
    Some(fields)
}

/// The body's fields from the tree (the fallback, and an upcast payload).
pub(super) fn detail_fields_of(payload: &Value, event_type: &str) -> Map<String, Value> {
    let body = payload.get(event_type).unwrap_or(payload);
    let mut fields = Map::new();
    if let Some(body) = body.as_object() {
        for (key, wanted) in DETAIL_FIELDS {
            if let Some(value) = body.get(key).filter(|value| wanted(value)) {
                fields.insert(key.to_owned(), value.clone());
            }
        }
    }
    fields
}

/// Reads detail fields. At the top level (`event_type` given) the body under the event
/// type's key wins if there is one, else the top level's own fields count; in a body
/// (`None`) only its own. A value that is no object has none (the tree's `as_object` is
/// `None`); other fields (the editor document) are skipped unbuilt.
struct Fields<'a> {
    event_type: Option<&'a str>,
}

impl<'de> DeserializeSeed<'de> for Fields<'_> {
    type Value = Map<String, Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Fields<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event payload")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut body: Option<Map<String, Value>> = None;
        let mut own = Map::new();
        let mut seen = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let detail = DETAIL_FIELDS.iter().find(|(name, _)| *name == key);
            let is_body = self.event_type == Some(key.as_str());
            if detail.is_none() && !is_body {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            // The tree keeps the last of duplicate keys; leave such text to it.
            if seen.contains(&key) {
                return Err(de::Error::custom("duplicate key"));
            }
            if is_body {
                body = Some(map.next_value_seed(Fields { event_type: None })?);
            } else if let Some((name, wanted)) = detail {
                let value: Value = map.next_value()?;
                if wanted(&value) {
                    own.insert((*name).to_owned(), value);
                }
            }
            seen.push(key);
        }
        Ok(body.unwrap_or(own))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Map::new())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Map::new())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Map::new())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Map::new())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Map::new())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Map::new())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Map::new())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Both readers agree on every shape, including the odd ones.
    #[test]
    fn the_text_readers_give_what_the_tree_gives() {
        let payloads = [
            json!({"ModelCreated": {"version": 1, "key": "k", "modelJson": {"childShapes": [{"a": [1, {"b": null}]}]}, "comment": null}}),
            json!({"ModelPublished": {"version": 2, "comment": "go"}}),
            json!({"ModelPublished": {"version": -1, "comment": 5, "key": ["k"]}}),
            json!({"ModelPublished": "not an object"}),
            json!({"ModelPublished": [1, 2]}),
            json!({"version": 3, "key": "top", "other": {"deep": [1]}}),
            json!({"Other": {"version": 4}, "sourceVersion": 7}),
            json!([1, 2, 3]),
            json!("text"),
            json!(null),
        ];
        for payload in payloads {
            let text = payload.to_string();
            for event_type in ["ModelPublished", "ModelCreated", "Other"] {
                assert_eq!(
                    detail_fields(&text, event_type),
                    Some(detail_fields_of(&payload, event_type)),
                    "{event_type}: {text}"
                );
            }
        }
    }

    #[test]
    fn a_duplicate_key_is_left_to_the_tree() {
        assert_eq!(
            detail_fields(
                r#"{"ModelPublished": {"version": 1, "version": 2}}"#,
                "ModelPublished"
            ),
            None
        );
    }
}
