//! The JSON the rules read: a `serde_json::Value`, or an [`Outline`] decoded straight from a
//! document's text.
//!
//! Why the outline: publishing validates the model's stored text, and decoding 16 KB of
//! editor JSON into a `Value` (a tree of maps and strings) took ≈ 70 µs, for rules that read
//! a handful of keys; scanning the same text without building anything took ≈ 17 µs
//! (docs/performance.md, "Validation from the text"). The outline keeps only the keys some
//! rule reads ([`READ_KEYS`], at any depth) and skips the rest, borrowing its strings from
//! the text where they hold no escapes.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// What the rules ask of a JSON value; `Value`'s own meaning in each case (`get` finds a key
/// of an object and nothing in anything else).
pub(crate) trait Json: Sized {
    fn get(&self, key: &str) -> Option<&Self>;
    fn as_str(&self) -> Option<&str>;
    fn as_array(&self) -> Option<&[Self]>;
    fn as_bool(&self) -> Option<bool>;
    fn kind(&self) -> Kind;

    fn is_object(&self) -> bool {
        self.kind() == Kind::Object
    }
}

/// A JSON value's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl Json for Value {
    fn get(&self, key: &str) -> Option<&Self> {
        Value::get(self, key)
    }

    fn as_str(&self) -> Option<&str> {
        Value::as_str(self)
    }

    fn as_array(&self) -> Option<&[Self]> {
        Value::as_array(self).map(Vec::as_slice)
    }

    fn as_bool(&self) -> Option<bool> {
        Value::as_bool(self)
    }

    fn kind(&self) -> Kind {
        match self {
            Value::Null => Kind::Null,
            Value::Bool(_) => Kind::Bool,
            Value::Number(_) => Kind::Number,
            Value::String(_) => Kind::String,
            Value::Array(_) => Kind::Array,
            Value::Object(_) => Kind::Object,
        }
    }
}

/// Every key any rule reads, at whatever depth it reads it. A rule that reads another key
/// must add it here (the text and `Value` paths are compared on every fixture and by the
/// fuzzer).
pub(crate) const READ_KEYS: [&str; 9] = [
    "childShapes",
    "id",
    "isforcompensation",
    "outgoing",
    "overrideid",
    "properties",
    "resourceId",
    "stencil",
    "target",
];

/// A JSON value with only [`READ_KEYS`] kept in its objects; numbers without their value.
#[derive(Debug)]
pub(crate) enum Outline<'a> {
    Null,
    Bool(bool),
    Number,
    String(Cow<'a, str>),
    Array(Vec<Outline<'a>>),
    /// The kept keys, each once: a repeated key keeps its last value, as `Value` does.
    Object(Vec<(&'static str, Outline<'a>)>),
}

impl Json for Outline<'_> {
    fn get(&self, key: &str) -> Option<&Self> {
        match self {
            Outline::Object(fields) => fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Outline::String(s) => Some(s),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&[Self]> {
        match self {
            Outline::Array(items) => Some(items),
            _ => None,
        }
    }

    fn as_bool(&self) -> Option<bool> {
        match self {
            Outline::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Outline::Null => Kind::Null,
            Outline::Bool(_) => Kind::Bool,
            Outline::Number => Kind::Number,
            Outline::String(_) => Kind::String,
            Outline::Array(_) => Kind::Array,
            Outline::Object(_) => Kind::Object,
        }
    }
}

impl<'de> Deserialize<'de> for Outline<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OutlineVisitor)
    }
}

struct OutlineVisitor;

impl<'de> Visitor<'de> for OutlineVisitor {
    type Value = Outline<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Outline::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Outline::Number)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Outline::Number)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Outline::Number)
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Outline::String(Cow::Borrowed(s)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Outline::String(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(Outline::String(Cow::Owned(s)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Outline::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Outline::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Outline::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields: Vec<(&'static str, Outline<'de>)> = Vec::new();
        while let Some(ReadKey(key)) = map.next_key()? {
            let Some(key) = key else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let value = map.next_value()?;
            match fields.iter_mut().find(|(k, _)| *k == key) {
                Some(field) => field.1 = value,
                None => fields.push((key, value)),
            }
        }
        Ok(Outline::Object(fields))
    }
}

/// An object's key: which of [`READ_KEYS`] it is, if any.
struct ReadKey(Option<&'static str>);

impl<'de> Deserialize<'de> for ReadKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ReadKeyVisitor)
    }
}

struct ReadKeyVisitor;

impl Visitor<'_> for ReadKeyVisitor {
    type Value = ReadKey;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(ReadKey(READ_KEYS.iter().copied().find(|k| *k == key)))
    }
}
