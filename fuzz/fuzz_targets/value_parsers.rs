//! The domain's newtype parsers on arbitrary strings, with their invariants:
//! - `ModelKey`: accepted ⇔ 1–50 characters, an XML NCName (the key becomes the BPMN process
//!   id, an `xsd:ID`) made of letters, digits, `_`, `-` and `.`; kept verbatim; the error
//!   says which rule failed; never contains U+001F (the `ModelId` separator).
//! - `ModelName` (1–100), `Category` (≤ 50, blank = none), `Description` (≤ 4000, blank =
//!   none): trimmed, bounded in characters, the error names the field, and parsing the parsed
//!   value again gives the same value.
//! - Accepted values hold no U+0000: PostgreSQL cannot store it (text or jsonb).
//! - `EditorJson`: accepted ⇔ a JSON object of at most 5 MiB serialised.
#![no_main]

use domain::{Category, Description, EditorJson, ModelKey, ModelName, ValueError};
use flowable_ui_fuzz::storable::holds_nul;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    key(&raw);
    name(&raw);
    optional_text("category", &raw, Category::MAX, |s| {
        Category::parse(s).map(|c| c.map(|c| c.as_str().to_owned()))
    });
    optional_text("description", &raw, Description::MAX, |s| {
        Description::parse(s).map(|d| d.map(|d| d.as_str().to_owned()))
    });
    editor_json(data);
});

fn key(raw: &str) {
    let chars = raw.chars().count();
    match ModelKey::parse(raw) {
        Ok(key) => {
            assert_eq!(key.as_str(), raw, "a key is kept verbatim");
            assert_eq!(key.to_string(), raw);
            assert!(
                (1..=ModelKey::MAX).contains(&chars),
                "accepted {chars} chars"
            );
            assert!(is_ncname(raw), "accepted key {raw:?} is not an XML NCName");
            assert!(!raw.contains('\u{1f}'), "a key holds the ModelId separator");
            assert!(!raw.contains('\0'), "a key holds U+0000");
            let json = serde_json::to_string(&key).expect("a key serialises");
            let back: ModelKey = serde_json::from_str(&json).expect("a key deserialises");
            assert_eq!(back, key);
        }
        Err(error) => {
            assert_eq!(error.field(), "key");
            match error {
                ValueError::Empty { .. } => assert!(raw.is_empty()),
                ValueError::TooLong { max, .. } => {
                    assert_eq!(max, ModelKey::MAX);
                    assert!(chars > ModelKey::MAX);
                }
                ValueError::NotNcName { .. } => {
                    assert!((1..=ModelKey::MAX).contains(&chars));
                    // Plain ASCII NCNames must never be refused.
                    assert!(
                        !(raw.is_ascii() && is_ncname(raw)),
                        "refused ASCII NCName {raw:?}"
                    );
                }
                other => panic!("unexpected key error {other:?}"),
            }
        }
    }
}

fn name(raw: &str) {
    let trimmed = raw.trim();
    match ModelName::parse(raw) {
        Ok(name) => {
            assert_eq!(name.as_str(), trimmed);
            let chars = trimmed.chars().count();
            assert!(
                (1..=ModelName::MAX).contains(&chars),
                "accepted {chars} chars"
            );
            assert!(!trimmed.contains('\0'), "a name holds U+0000");
            assert_eq!(
                ModelName::parse(name.as_str()),
                Ok(name.clone()),
                "idempotent"
            );
        }
        Err(error) => {
            assert_eq!(error.field(), "name");
            assert!(!error.to_string().is_empty());
            match error {
                ValueError::Empty { .. } => assert!(trimmed.is_empty()),
                ValueError::TooLong { max, .. } => {
                    assert_eq!(max, ModelName::MAX);
                    assert!(trimmed.chars().count() > max);
                }
                // Any other refusal must be for a character PostgreSQL cannot store.
                _ => assert!(trimmed.contains('\0'), "refused {raw:?}: {error}"),
            }
        }
    }
}

fn optional_text(
    field: &str,
    raw: &str,
    max: usize,
    parse: impl Fn(&str) -> Result<Option<String>, ValueError>,
) {
    let trimmed = raw.trim();
    match parse(raw) {
        Ok(None) => assert!(
            trimmed.is_empty(),
            "{field}: non-blank {raw:?} read as none"
        ),
        Ok(Some(value)) => {
            assert_eq!(value, trimmed);
            assert!(!value.is_empty());
            assert!(value.chars().count() <= max);
            assert!(!value.contains('\0'), "{field} holds U+0000");
            assert_eq!(parse(&value), Ok(Some(value.clone())), "idempotent");
        }
        Err(error) => {
            assert_eq!(error.field(), field);
            match error {
                ValueError::TooLong { max: m, .. } => {
                    assert_eq!(m, max);
                    assert!(trimmed.chars().count() > max);
                }
                _ => assert!(trimmed.contains('\0'), "{field}: refused {raw:?}: {error}"),
            }
        }
    }
}

fn editor_json(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let is_object = value.is_object();
    let size = serde_json::to_vec(&value).map_or(usize::MAX, |v| v.len());
    match EditorJson::parse(value.clone()) {
        Ok(json) => {
            assert!(is_object && size <= EditorJson::MAX_BYTES);
            assert_eq!(json.to_value(), value);
            assert!(!holds_nul(&value), "accepted editor JSON holding U+0000");
        }
        Err(ValueError::NotAnObject { field }) => {
            assert_eq!(field, "modelJson");
            assert!(!is_object);
        }
        Err(ValueError::TooLarge { .. }) => assert!(size > EditorJson::MAX_BYTES),
        // Any other refusal must be for a string PostgreSQL cannot store.
        Err(error) => assert!(holds_nul(&value), "refused {error}"),
    }
}

/// XML 1.0 (fifth edition) / Namespaces in XML `NCName`: a name without `:`.
fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(is_name_start_char) && chars.all(is_name_char)
}

fn is_name_start_char(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

fn is_name_char(c: char) -> bool {
    is_name_start_char(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}
