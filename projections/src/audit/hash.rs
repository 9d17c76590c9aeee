//! The audit chain's hash: SHA-256 over a canonical, unambiguous encoding of a row.
//!
//! Encoding (version 1), fields in this fixed order, each self-delimiting:
//!
//! - text: byte `0x01`, its UTF-8 length as a big-endian u64, the bytes;
//! - absent text (SQL NULL): byte `0x00`;
//! - integer: its 8 big-endian bytes (two's complement);
//!
//! `"flowable-ui/audit_logs/v1"` (text), `seq`, `prev_hash` (text), `id`,
//! `global_position`, `tx_id`, `tenant_id`, `user_id`, `action`, `resource`, `resource_id`,
//! `ip_address`, `user_agent`, `timestamp` (microseconds since the Unix epoch), `result`
//! (`SUCCESS`/`FAILURE`), `correlation_id`, `details` (text: canonical JSON, see
//! [`canonical_json`]). The generation is not hashed (it is where a row is stored, not what
//! it says), so every generation of the same log has the same hashes.

use sha2::{Digest, Sha256};

use super::row::AuditRow;

/// `prev_hash` of the first row of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const DOMAIN: &str = "flowable-ui/audit_logs/v1";

/// The hex SHA-256 of `row`'s content, `seq` and `prev_hash` (its `hash` field is ignored).
pub fn compute(row: &AuditRow) -> String {
    let mut hasher = Encoder(Sha256::new());
    hasher.text(DOMAIN);
    hasher.int(row.seq);
    hasher.text(&row.prev_hash);
    hasher.int(row.id);
    hasher.int(row.global_position);
    hasher.int(row.tx_id);
    hasher.opt(row.tenant_id.as_deref());
    hasher.opt(row.user_id.as_deref());
    hasher.text(&row.action);
    hasher.text(&row.resource);
    hasher.opt(row.resource_id.as_deref());
    hasher.opt(row.ip_address.as_deref());
    hasher.opt(row.user_agent.as_deref());
    hasher.int(row.timestamp.timestamp_micros());
    hasher.text(row.result.as_str());
    hasher.opt(row.correlation_id.as_deref());
    let mut details = Vec::with_capacity(128);
    canonical_json(&row.details, &mut details);
    hasher.bytes(&details);
    hex::encode(hasher.0.finalize())
}

struct Encoder(Sha256);

impl Encoder {
    fn text(&mut self, text: &str) {
        self.bytes(text.as_bytes());
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.0.update([1u8]);
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
    }

    fn opt(&mut self, text: Option<&str>) {
        match text {
            Some(text) => self.text(text),
            None => self.0.update([0u8]),
        }
    }

    fn int(&mut self, value: i64) {
        self.0.update(value.to_be_bytes());
    }
}

/// Canonical JSON, independent of how the value was built or read back from `jsonb`: no
/// whitespace, object keys sorted by their UTF-8 bytes, strings with only `"`, `\` and
/// control characters escaped (`\"`, `\\`, `\u00XX`), numbers as `serde_json` prints them
/// (integers in plain decimal).
pub fn canonical_json(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => out.extend_from_slice(number.to_string().as_bytes()),
        Value::String(text) => string(text, out),
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                canonical_json(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                string(key, out);
                out.push(b':');
                canonical_json(item, out);
            }
            out.push(b'}');
        }
    }
}

fn string(text: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &byte in text.as_bytes() {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..=0x1f => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]),
            _ => out.push(byte),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use serde_json::json;

    use super::*;
    use crate::audit::AuditResult;

    fn row() -> AuditRow {
        AuditRow {
            id: 7,
            user_id: Some("alice".into()),
            action: "CreateModel".into(),
            resource: "ProcessModel".into(),
            resource_id: Some("m1".into()),
            ip_address: Some("10.0.0.1".into()),
            user_agent: None,
            timestamp: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap_or_default(),
            result: AuditResult::Success,
            details: json!({"events": ["ModelCreated"], "version": 1}),
            tenant_id: Some("acme".into()),
            correlation_id: Some("req-1".into()),
            global_position: 7,
            tx_id: 900,
            seq: 1,
            prev_hash: GENESIS.into(),
            hash: String::new(),
        }
    }

    fn json_text(value: &serde_json::Value) -> String {
        let mut out = Vec::new();
        canonical_json(value, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn canonical_json_sorts_keys_and_escapes_minimally() {
        let value = json!({"b": [1, true, null], "a": {"y": "q\"\\\n\u{1}é", "x": -2}});
        assert_eq!(
            json_text(&value),
            r#"{"a":{"x":-2,"y":"q\"\\\u000a\u0001é"},"b":[1,true,null]}"#
        );
    }

    #[test]
    fn hash_is_hex_sha256_and_stable() {
        let hash = compute(&row());
        assert_eq!(hash.len(), 64);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(compute(&row()), hash);
        let mut stored = row();
        stored.hash = "ignored".into();
        assert_eq!(
            compute(&stored),
            hash,
            "the hash field itself is not hashed"
        );
    }

    #[test]
    fn every_field_counts() {
        let base = compute(&row());
        let changes: Vec<fn(&mut AuditRow)> = vec![
            |r| r.id += 1,
            |r| r.seq += 1,
            |r| r.prev_hash = "1".repeat(64),
            |r| r.global_position += 1,
            |r| r.tx_id += 1,
            |r| r.tenant_id = None,
            |r| r.user_id = Some("mallory".into()),
            |r| r.action = "PublishModel".into(),
            |r| r.resource = "Other".into(),
            |r| r.resource_id = None,
            |r| r.ip_address = None,
            |r| r.user_agent = Some(String::new()),
            |r| r.timestamp += chrono::Duration::microseconds(1),
            |r| r.result = AuditResult::Failure,
            |r| r.correlation_id = None,
            |r| r.details = json!({"events": ["ModelCreated"], "version": 2}),
        ];
        for (index, change) in changes.into_iter().enumerate() {
            let mut changed = row();
            change(&mut changed);
            assert_ne!(
                compute(&changed),
                base,
                "change #{index} must alter the hash"
            );
        }
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let mut a = row();
        a.action = "ab".into();
        a.resource = "c".into();
        let mut b = row();
        b.action = "a".into();
        b.resource = "bc".into();
        assert_ne!(compute(&a), compute(&b));
        let mut none = row();
        none.user_agent = None;
        let mut empty = row();
        empty.user_agent = Some(String::new());
        assert_ne!(compute(&none), compute(&empty), "NULL differs from ''");
    }
}
