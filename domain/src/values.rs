//! Parsed value types: once constructed, a value is known to satisfy its rules.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

/// Why a raw input could not become a value; names the field so the API can report it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} must be at most {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("{field} must be an XML NCName: a letter or '_' first, then letters, digits, '.', '-' or '_'")]
    NotNcName { field: &'static str },
    #[error("{field} must be a JSON object")]
    NotAnObject { field: &'static str },
    #[error("{field} must be at most {max} bytes when serialised")]
    TooLarge { field: &'static str, max: usize },
    /// PostgreSQL (`text` and `jsonb`) cannot store U+0000: refused here rather than as a
    /// server error from the event store.
    #[error("{field} must not contain the character U+0000")]
    ContainsNul { field: &'static str },
}

impl ValueError {
    /// The request field this error is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Empty { field }
            | Self::TooLong { field, .. }
            | Self::NotNcName { field }
            | Self::NotAnObject { field }
            | Self::TooLarge { field, .. }
            | Self::ContainsNul { field } => field,
        }
    }
}

fn bounded(
    field: &'static str,
    raw: &str,
    max: usize,
    allow_empty: bool,
) -> Result<String, ValueError> {
    let trimmed = raw.trim();
    if !allow_empty && trimmed.is_empty() {
        return Err(ValueError::Empty { field });
    }
    if trimmed.chars().count() > max {
        return Err(ValueError::TooLong { field, max });
    }
    if trimmed.contains('\0') {
        return Err(ValueError::ContainsNul { field });
    }
    Ok(trimmed.to_owned())
}

macro_rules! string_value {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_value!(
    /// A model key: an XML NCName of 1–50 characters (it becomes the BPMN process id).
    ModelKey
);
string_value!(
    /// A model name: 1–100 characters.
    ModelName
);
string_value!(
    /// A category: at most 50 characters.
    Category
);
string_value!(
    /// A description: at most 4000 characters.
    Description
);
string_value!(
    /// The tenant a model belongs to, from the caller's token.
    TenantId
);

impl ModelKey {
    pub const MAX: usize = 50;

    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        const FIELD: &str = "key";
        if raw.is_empty() {
            return Err(ValueError::Empty { field: FIELD });
        }
        if raw.chars().count() > Self::MAX {
            return Err(ValueError::TooLong {
                field: FIELD,
                max: Self::MAX,
            });
        }
        let mut chars = raw.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| (c == '_' || c.is_alphabetic()) && in_xml_name(c, true));
        let rest_ok = chars.all(|c| {
            (c.is_alphanumeric() || matches!(c, '_' | '-' | '.')) && in_xml_name(c, false)
        });
        if first_ok && rest_ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValueError::NotNcName { field: FIELD })
        }
    }
}

/// Whether `c` may stand in an XML name (XML 1.0 fifth edition): `NameStartChar` when `first`,
/// else `NameChar`; `:` excluded, as in an NCName. Unicode letters and digits outside these
/// ranges (e.g. `ª`, `²`) would make the key an invalid BPMN process id.
fn in_xml_name(c: char, first: bool) -> bool {
    let start = matches!(c,
        'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
        | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
        | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}');
    start
        || (!first
            && matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}'
                | '\u{203F}'..='\u{2040}'))
}

impl ModelName {
    pub const MAX: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        bounded("name", raw, Self::MAX, false).map(Self)
    }
}

impl Category {
    pub const MAX: usize = 50;

    /// An empty (or blank) category means "none": `Ok(None)`.
    pub fn parse(raw: &str) -> Result<Option<Self>, ValueError> {
        let value = bounded("category", raw, Self::MAX, true)?;
        Ok((!value.is_empty()).then_some(Self(value)))
    }
}

impl Description {
    pub const MAX: usize = 4000;

    /// An empty (or blank) description means "none": `Ok(None)`.
    pub fn parse(raw: &str) -> Result<Option<Self>, ValueError> {
        let value = bounded("description", raw, Self::MAX, true)?;
        Ok((!value.is_empty()).then_some(Self(value)))
    }
}

impl TenantId {
    /// Tenants come from verified tokens; an empty one is refused by the auth layer.
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }
}

/// The editor JSON of a model: a JSON object of at most 5 MiB, kept as its JSON text.
///
/// Why text: a model's state, its events, the state cache, the projector and the API's
/// answers only carry the document along; only validation looks inside. A
/// `serde_json::Value` tree of a 16 KB document took ≈ 200 KB and its building, copying,
/// serializing and dropping were the largest part of the server's work on a publish
/// (docs/performance.md, "Editor JSON as text; plans made once"). Serializing writes the
/// text as it is, deserializing (from a string, bytes or a `Value`) checks its syntax and
/// copies it, and a clone shares it.
#[derive(Clone)]
pub struct EditorJson(Arc<RawValue>);

impl EditorJson {
    pub const MAX_BYTES: usize = 5 * 1024 * 1024;

    pub fn parse(value: serde_json::Value) -> Result<Self, ValueError> {
        const FIELD: &str = "modelJson";
        if !value.is_object() {
            return Err(ValueError::NotAnObject { field: FIELD });
        }
        let text =
            serde_json::value::to_raw_value(&value).expect("a serde_json::Value always serializes");
        if text.get().len() > Self::MAX_BYTES {
            return Err(ValueError::TooLarge {
                field: FIELD,
                max: Self::MAX_BYTES,
            });
        }
        if holds_nul(&value) {
            return Err(ValueError::ContainsNul { field: FIELD });
        }
        Ok(Self(text.into()))
    }

    /// An empty canvas, used when a model is created without editor JSON.
    pub fn empty_canvas(key: &ModelKey, name: &ModelName) -> Self {
        let canvas = serde_json::json!({
            "resourceId": "canvas",
            "stencil": { "id": "BPMNDiagram" },
            "stencilset": {
                "url": "stencilsets/bpmn2.0/bpmn2.0.json",
                "namespace": "http://b3mn.org/stencilset/bpmn2.0#"
            },
            "properties": { "process_id": key.as_str(), "name": name.as_str() },
            "childShapes": []
        });
        Self(
            serde_json::value::to_raw_value(&canvas)
                .expect("a serde_json::Value always serializes")
                .into(),
        )
    }

    /// The JSON text (as written by whoever made it: this server writes it compact, and
    /// PostgreSQL's `jsonb` with a space after each `:` and `,`).
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The JSON text, to embed as it is in other JSON.
    pub fn as_raw(&self) -> &RawValue {
        &self.0
    }

    /// The document decoded, for a look inside; decodes on every call.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).expect("editor JSON text is valid JSON")
    }

    /// The document validated from its text, without decoding it into a `Value`
    /// ([`crate::validate_editor_json_text`]).
    pub fn validate(&self) -> crate::ValidationReport {
        // The text was checked when this was made, and the outline decodes all JSON a `Value`
        // does (it nests less deeply), as `to_value` relies on too.
        crate::validate_editor_json_text(self.as_str()).expect("editor JSON text is valid JSON")
    }
}

/// Equal when the texts are, or else when they decode to equal values (the same document
/// written by this server and read back from PostgreSQL differs in spacing and key order).
impl PartialEq for EditorJson {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str() || self.to_value() == other.to_value()
    }
}

impl std::fmt::Debug for EditorJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("EditorJson").field(&self.as_str()).finish()
    }
}

impl Serialize for EditorJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// Stored documents are trusted to meet [`EditorJson::parse`]'s rules (they met them when
/// the command was decided); only the syntax is checked, and that it is an object.
impl<'de> Deserialize<'de> for EditorJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Box::<RawValue>::deserialize(deserializer)?;
        if !text.get().trim_start().starts_with('{') {
            return Err(serde::de::Error::custom(
                "editor JSON must be a JSON object",
            ));
        }
        Ok(Self(text.into()))
    }
}

/// True when a string or key anywhere in `value` holds U+0000 (an explicit stack: any depth).
fn holds_nul(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(s) if s.contains('\0') => return true,
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                for (key, item) in map {
                    if key.contains('\0') {
                        return true;
                    }
                    stack.push(item);
                }
            }
            _ => {}
        }
    }
    false
}

/// A process model's id. Derived from tenant and key (UUID v5), so that two concurrent
/// creates of one key race for the same event stream and the store lets exactly one win
/// (docs/adr/0001-key-uniqueness.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ModelId(Uuid);

impl ModelId {
    /// Namespace for model ids; never change it, or existing keys map to new ids.
    const NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2b7e_93d4_4c1a_8e55_0b7a_1d2c_3e4f);

    pub fn for_key(tenant: &TenantId, key: &ModelKey) -> Self {
        // The separator cannot occur in a key (NCName), so (tenant, key) maps one-to-one.
        let name = format!("{}\u{1f}{}", tenant.as_str(), key.as_str());
        Self(Uuid::new_v5(&Self::NAMESPACE, name.as_bytes()))
    }

    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl std::fmt::Display for ModelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editor_json_is_carried_as_its_text() {
        let doc = serde_json::json!({"resourceId": "canvas", "childShapes": [{"id": "a"}]});
        let json = EditorJson::parse(doc.clone()).expect("an object");
        assert_eq!(
            json.as_str(),
            r#"{"childShapes":[{"id":"a"}],"resourceId":"canvas"}"#
        );
        assert_eq!(json.to_value(), doc);
        // Embedded in other JSON as it is, and read back (from text or from a `Value`) the
        // same document.
        let event = serde_json::json!({"modelJson": &json, "version": 1});
        assert_eq!(event["modelJson"], doc);
        let text = serde_json::to_string(&serde_json::json!({"m": &json})).expect("json");
        assert_eq!(text, format!(r#"{{"m":{}}}"#, json.as_str()));
        #[derive(Deserialize)]
        struct Holder {
            m: EditorJson,
        }
        let from_text: Holder = serde_json::from_str(&text).expect("from text");
        let from_value: Holder =
            serde_json::from_value(serde_json::json!({"m": doc})).expect("from a value");
        assert_eq!(from_text.m.as_str(), json.as_str());
        assert_eq!(from_value.m, json);
    }

    /// Numbers come back as they went in, however many times the document goes through
    /// text and `Value` (serde_json's `float_roundtrip`: its default float parsing is not
    /// correctly rounded, and the fuzzer found documents that changed on the way).
    #[test]
    fn editor_json_numbers_survive_round_trips() {
        for text in [
            r#"{"x":4.6433e+29}"#,
            r#"{"x":5.555555555555555e+32,"y":5.5555555555555554e+20,"z":0.1}"#,
            r#"{"x":5555555555555555555,"y":-1.7976931348623157e308,"z":5e-324}"#,
        ] {
            let value: serde_json::Value = serde_json::from_str(text).expect("JSON");
            let json = EditorJson::parse(value.clone()).expect("an object");
            assert_eq!(json.to_value(), value, "{text}");
            let through_value: EditorJson =
                serde_json::from_value(serde_json::to_value(&json).expect("to a value"))
                    .expect("from a value");
            assert_eq!(through_value.as_str(), json.as_str(), "{text}");
            assert_eq!(through_value, json, "{text}");
        }
    }

    #[test]
    fn editor_json_equality_is_the_documents() {
        let ours = EditorJson::parse(serde_json::json!({"b": 1, "a": [true]})).expect("object");
        // PostgreSQL's `jsonb` text: other spacing and key order.
        let stored: EditorJson =
            serde_json::from_str(r#"{"b": 1, "a": [true]}"#).expect("stored text");
        assert_ne!(ours.as_str(), stored.as_str());
        assert_eq!(ours, stored);
        let other: EditorJson = serde_json::from_str(r#"{"b": 2, "a": [true]}"#).expect("text");
        assert_ne!(ours, other);
    }

    #[test]
    fn stored_editor_json_must_be_an_object() {
        for not_an_object in ["[1]", "\"x\"", "null", "3"] {
            assert!(
                serde_json::from_str::<EditorJson>(not_an_object).is_err(),
                "{not_an_object}"
            );
        }
        assert!(serde_json::from_str::<EditorJson>("{\"a\": ").is_err());
    }

    #[test]
    fn editor_json_limits_count_the_text() {
        let under = "x".repeat(EditorJson::MAX_BYTES - r#"{"a":""}"#.len());
        assert!(EditorJson::parse(serde_json::json!({ "a": under })).is_ok());
        let over = "x".repeat(EditorJson::MAX_BYTES);
        assert_eq!(
            EditorJson::parse(serde_json::json!({ "a": over })),
            Err(ValueError::TooLarge {
                field: "modelJson",
                max: EditorJson::MAX_BYTES
            })
        );
        assert_eq!(
            EditorJson::parse(serde_json::json!({ "a\u{0}": 1 })),
            Err(ValueError::ContainsNul { field: "modelJson" })
        );
    }

    #[test]
    fn key_accepts_ncnames() {
        for ok in ["a", "_x", "order-process.v2", "Prozeß_1", &"k".repeat(50)] {
            assert!(ModelKey::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn key_rejects_non_ncnames() {
        assert_eq!(ModelKey::parse(""), Err(ValueError::Empty { field: "key" }));
        assert_eq!(
            ModelKey::parse(&"k".repeat(51)),
            Err(ValueError::TooLong {
                field: "key",
                max: 50
            })
        );
        for bad in [
            "1abc", "-a", ".a", "a b", "a:b", "a/b", " a", "a\t", "ªL", "a²",
        ] {
            assert_eq!(
                ModelKey::parse(bad),
                Err(ValueError::NotNcName { field: "key" }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn name_is_trimmed_and_bounded() {
        assert_eq!(
            ModelName::parse("  Order  ").map(|n| n.0),
            Ok("Order".to_owned())
        );
        assert_eq!(
            ModelName::parse("   "),
            Err(ValueError::Empty { field: "name" })
        );
        assert!(ModelName::parse(&"n".repeat(100)).is_ok());
        assert_eq!(
            ModelName::parse(&"n".repeat(101)),
            Err(ValueError::TooLong {
                field: "name",
                max: 100
            })
        );
    }

    #[test]
    fn optional_texts_treat_blank_as_none() {
        assert_eq!(Category::parse(""), Ok(None));
        assert_eq!(Description::parse("  "), Ok(None));
        assert!(Category::parse(&"c".repeat(51)).is_err());
        assert!(Description::parse(&"d".repeat(4000)).is_ok());
        assert!(Description::parse(&"d".repeat(4001)).is_err());
    }

    #[test]
    fn editor_json_must_be_a_bounded_object() {
        assert!(EditorJson::parse(serde_json::json!({})).is_ok());
        assert_eq!(
            EditorJson::parse(serde_json::json!([1])),
            Err(ValueError::NotAnObject { field: "modelJson" })
        );
        let big = serde_json::json!({ "x": "y".repeat(EditorJson::MAX_BYTES) });
        assert!(matches!(
            EditorJson::parse(big),
            Err(ValueError::TooLarge { .. })
        ));
    }

    #[test]
    fn nul_is_refused_since_postgres_cannot_store_it() {
        fn nul<T>(field: &'static str) -> Result<T, ValueError> {
            Err(ValueError::ContainsNul { field })
        }
        assert_eq!(ModelName::parse("a\0b"), nul("name"));
        assert_eq!(Category::parse("\0"), nul("category"));
        assert_eq!(Description::parse(" x\0 "), nul("description"));
        assert_eq!(
            EditorJson::parse(serde_json::json!({ "a": [{ "b": "\u{0}" }] })),
            nul("modelJson")
        );
        assert_eq!(
            EditorJson::parse(serde_json::json!({ "a\u{0}": 1 })),
            nul("modelJson")
        );
    }

    #[test]
    fn model_id_is_stable_and_tenant_scoped() {
        let key = ModelKey::parse("order").expect("valid key");
        let a = ModelId::for_key(&TenantId::new("acme"), &key);
        assert_eq!(a, ModelId::for_key(&TenantId::new("acme"), &key));
        assert_ne!(a, ModelId::for_key(&TenantId::new("other"), &key));
    }
}
