//! Upcasters: turn stored payloads of older event versions into the current shape before
//! they are deserialised. Stored events are never rewritten; both the command side (through
//! cqrs-es's `EventUpcaster`) and the projections (on replay) read old events through here.
//! The procedure is in `docs/adr/0002-event-versioning.md`.

use serde_json::Value;

/// `ModelRestored` 2.0 renamed `fromVersion` to `sourceVersion`.
pub const MODEL_RESTORED_V2: &str = "2.0";

/// One upcaster: events of `event_type` stored with a version below `to_version` are
/// passed through `upcast`.
pub struct Upcaster {
    pub event_type: &'static str,
    pub to_version: &'static str,
    pub upcast: fn(Value) -> Value,
}

/// Every upcaster of `ProcessModel` events, oldest first.
pub const MODEL_UPCASTERS: &[Upcaster] = &[Upcaster {
    event_type: "ModelRestored",
    to_version: MODEL_RESTORED_V2,
    upcast: model_restored_v1_to_v2,
}];

/// `{"ModelRestored": {"version": 3, "fromVersion": 1}}` → `{"ModelRestored": {"version": 3,
/// "sourceVersion": 1}}`.
fn model_restored_v1_to_v2(mut payload: Value) -> Value {
    if let Some(body) = payload
        .get_mut("ModelRestored")
        .and_then(Value::as_object_mut)
    {
        let source = body.remove("fromVersion").unwrap_or(Value::Null);
        body.insert("sourceVersion".to_owned(), source);
    }
    payload
}

/// Whether an event stored as `event_type` at `event_version` is read through an upcaster.
pub fn needs_upcast(event_type: &str, event_version: &str) -> bool {
    applicable(event_type, event_version).next().is_some()
}

/// Applies every upcaster whose version is newer than `event_version` to the payload.
pub fn upcast_model_event(event_type: &str, event_version: &str, payload: Value) -> Value {
    applicable(event_type, event_version).fold(payload, |payload, u| (u.upcast)(payload))
}

fn applicable<'a>(
    event_type: &'a str,
    event_version: &'a str,
) -> impl Iterator<Item = &'static Upcaster> + 'a {
    MODEL_UPCASTERS
        .iter()
        .filter(move |u| u.event_type == event_type && version_below(event_version, u.to_version))
}

/// `a < b` for dotted numeric versions ("1.0" < "2.0" < "10.0"); an unparsable stored
/// version counts as the oldest.
fn version_below(a: &str, b: &str) -> bool {
    let parse = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parse(a) < parse(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process_model::{ModelRestored, ProcessModelEvent};
    use serde_json::json;

    #[test]
    fn a_v1_model_restored_reads_as_v2() {
        let stored = json!({"ModelRestored": {"version": 3, "fromVersion": 1}});
        let upcast = upcast_model_event("ModelRestored", "1.0", stored);
        let event: ProcessModelEvent = serde_json::from_value(upcast).expect("current shape");
        assert_eq!(
            event,
            ProcessModelEvent::ModelRestored(ModelRestored {
                version: 3,
                source_version: Some(1)
            })
        );
    }

    #[test]
    fn current_versions_and_other_events_pass_unchanged() {
        let v2 = json!({"ModelRestored": {"version": 3, "sourceVersion": null}});
        assert_eq!(upcast_model_event("ModelRestored", "2.0", v2.clone()), v2);
        let other = json!({"ModelArchived": {"version": 1}});
        assert_eq!(
            upcast_model_event("ModelArchived", "1.0", other.clone()),
            other
        );
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(version_below("1.0", "2.0"));
        assert!(version_below("2.0", "10.0"));
        assert!(!version_below("2.0", "2.0"));
        assert!(version_below("garbage", "1.0"));
    }
}
