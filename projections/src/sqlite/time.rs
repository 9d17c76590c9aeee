//! How the SQLite read tables store timestamps: RFC 3339 UTC text with exactly six
//! fractional digits, so that text order is time order (indexes, sorts, `from`/`to`
//! filters) and a value reads back exactly as PostgreSQL's microsecond `timestamptz` would.

use chrono::{DateTime, SecondsFormat, Utc};

/// The stored text of `time` (sub-microsecond digits are dropped, as PostgreSQL rounds them
/// away too; the audit chain already works in microseconds).
pub(crate) fn to_text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_text_sorts_like_time() {
        let base = DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default();
        let times = [
            base,
            base + chrono::Duration::microseconds(5),
            base + chrono::Duration::milliseconds(500),
            base + chrono::Duration::seconds(1),
        ];
        let texts: Vec<String> = times.iter().copied().map(to_text).collect();
        assert_eq!(texts[0], "2026-01-01T00:00:00.000000Z");
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(sorted, texts);
        let back: DateTime<Utc> = DateTime::parse_from_rfc3339(&texts[1])
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        assert_eq!(back, times[1]);
    }
}
