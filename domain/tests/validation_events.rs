//! Editor-JSON validation of start events (`MissingStartEvent`, process level only) and end
//! events (`MissingEndEvent` warning, any depth). Assertions on rule codes and element ids.

#![allow(clippy::unwrap_used)]

#[path = "validation_support.rs"]
mod support;

use domain::{validate_editor_json, RuleCode::*};
use serde_json::Value;
use support::*;

fn end_only() -> Vec<Value> {
    vec![node("end", "EndNoneEvent", &[])]
}

fn with_end(more: Value) -> Value {
    let mut shapes = end_only();
    shapes.push(more);
    canvas(shapes)
}

/// start --sf--> task --tf--> the top-level end event, so nothing is disconnected.
fn started(start_stencil: &str) -> Vec<Value> {
    vec![
        node("s", start_stencil, &["sf"]),
        flow("sf", "t"),
        node("t", "UserTask", &["tf"]),
        flow("tf", "end"),
    ]
}

#[test]
fn no_start_event_at_all() {
    let d = canvas(vec![
        node("t", "UserTask", &["f"]),
        flow("f", "end"),
        node("end", "EndNoneEvent", &[]),
    ]);
    assert_eq!(errors(&d), vec![(MissingStartEvent, None)]);
    assert_eq!(warnings(&d), vec![]);
}

#[test]
fn start_event_only_inside_a_sub_process_does_not_count() {
    let scopes = [
        "SubProcess",
        "EventSubProcess",
        "CollapsedSubProcess",
        "AdhocSubProcess",
        "UserTask",
    ];
    for scope in scopes {
        let d = with_end(container("sub", scope, &[], started("StartNoneEvent")));
        assert_eq!(errors(&d), vec![(MissingStartEvent, None)], "{scope}");
    }
}

#[test]
fn start_event_at_process_level_counts() {
    let lane = |id: &str, kids: Vec<Value>| container(id, "Lane", &[], kids);
    let pool = |kids: Vec<Value>| container("pool", "Pool", &[], kids);
    let placements = [
        (
            "top level",
            canvas([end_only(), started("StartNoneEvent")].concat()),
        ),
        ("pool", with_end(pool(started("StartTimerEvent")))),
        (
            "pool → lane",
            with_end(pool(vec![lane("l1", started("StartMessageEvent"))])),
        ),
        ("lane", with_end(lane("l1", started("StartSignalEvent")))),
        (
            "second lane",
            with_end(pool(vec![
                lane("l1", vec![]),
                lane("l2", started("StartErrorEvent")),
            ])),
        ),
    ];
    for (place, d) in placements {
        let report = validate_editor_json(&d);
        assert_eq!(codes(&report.errors), vec![], "{place}");
        assert_eq!(codes(&report.warnings), vec![], "{place}");
    }
}

#[test]
fn any_stencil_starting_with_start_is_a_start_event() {
    let d = with_end(node("s", "StartEventRegistryEvent", &[]));
    assert!(!errors(&d).contains(&(MissingStartEvent, None)));
}

#[test]
fn pool_or_lane_inside_a_sub_process_is_not_process_level() {
    let lane = container("lane", "Lane", &[], started("StartNoneEvent"));
    let pool = container("pool", "Pool", &[], vec![lane]);
    let sub = container("sub", "SubProcess", &[], vec![pool]);
    assert_eq!(errors(&with_end(sub)), vec![(MissingStartEvent, None)]);
}

#[test]
fn start_event_with_a_broken_stencil_does_not_count() {
    let s = node("s", "X", &[]).tap(|n| n["stencil"] = serde_json::json!("StartNoneEvent"));
    assert_eq!(
        errors(&with_end(s)),
        vec![c(MissingStencil, "s"), (MissingStartEvent, None)]
    );
}

#[test]
fn end_event_anywhere_counts() {
    let no_end = vec![
        node("start", "StartNoneEvent", &["f"]),
        flow("f", "t"),
        node("t", "UserTask", &[]),
    ];
    assert_eq!(
        warnings(&canvas(no_end.clone())),
        vec![(MissingEndEvent, None)]
    );
    for end in [
        "EndNoneEvent",
        "EndErrorEvent",
        "EndTerminateEvent",
        "EndCancelEvent",
    ] {
        let nested = container("sub", "SubProcess", &[], vec![node("e", end, &[])]);
        let d = canvas([no_end.clone(), vec![nested]].concat());
        assert!(!warnings(&d).contains(&(MissingEndEvent, None)), "{end}");
        assert!(validate_editor_json(&d).is_valid());
    }
}

#[test]
fn missing_end_is_a_warning_not_an_error() {
    let d = canvas(vec![node("start", "StartNoneEvent", &[])]);
    let report = validate_editor_json(&d);
    assert!(report.is_valid());
    assert_eq!(
        codes(&report.warnings),
        vec![(MissingEndEvent, None), c(DisconnectedFlowNode, "start")]
    );
}
