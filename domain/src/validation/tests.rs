//! Unit tests of the walk and helpers; the rules are tested end to end under `domain/tests/`.

#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};

use super::shapes::{canvas_children, collect, label};

fn shape(id: &str, stencil: &str, children: Value) -> Value {
    json!({"resourceId": id, "stencil": {"id": stencil}, "childShapes": children})
}

#[test]
fn walk_is_pre_order_and_tracks_process_level() {
    let children = vec![
        shape(
            "pool",
            "Pool",
            json!([shape(
                "lane",
                "Lane",
                json!([shape("a", "UserTask", json!([]))])
            )]),
        ),
        shape(
            "sub",
            "SubProcess",
            json!([shape(
                "lane2",
                "Lane",
                json!([shape("b", "UserTask", json!([]))])
            )]),
        ),
        shape("c", "UserTask", json!([])),
    ];
    let shapes = collect(&children);
    let order: Vec<(&str, bool, Option<usize>, usize)> = shapes
        .iter()
        .map(|s| {
            (
                s.resource_id.unwrap(),
                s.process_level,
                s.parent,
                s.position,
            )
        })
        .collect();
    assert_eq!(
        order,
        vec![
            ("pool", true, None, 0),
            ("lane", true, Some(0), 0),
            ("a", true, Some(1), 0),
            ("sub", true, None, 1),
            ("lane2", false, Some(3), 0),
            ("b", false, Some(4), 0),
            ("c", true, None, 2),
        ]
    );
}

#[test]
fn element_id_prefers_a_non_empty_overrideid() {
    let children = vec![
        json!({"resourceId": "r1", "properties": {"overrideid": "o1"}}),
        json!({"resourceId": "r2", "properties": {"overrideid": ""}}),
        json!({"resourceId": "r3", "properties": {"overrideid": 7}}),
        json!({"resourceId": "", "properties": {"overrideid": "o4"}}),
        json!({"resourceId": 5}),
    ];
    let ids: Vec<_> = collect(&children)
        .iter()
        .map(|s| (s.resource_id, s.element_id))
        .collect();
    assert_eq!(
        ids,
        vec![
            (Some("r1"), Some("o1")),
            (Some("r2"), Some("r2")),
            (Some("r3"), Some("r3")),
            (None, Some("o4")),
            (None, None),
        ]
    );
}

#[test]
fn labels_name_the_shape_or_its_position() {
    let children = vec![
        json!(3),
        shape(
            "sub",
            "SubProcess",
            json!([{"stencil": {"id": "UserTask"}}]),
        ),
        json!({"childShapes": [null]}),
    ];
    let shapes = collect(&children);
    let labels: Vec<String> = shapes.iter().map(|s| label(&shapes, s)).collect();
    assert_eq!(
        labels,
        vec![
            "at childShapes[0] of the canvas",
            "'sub'",
            "at childShapes[0] of shape 'sub'",
            "at childShapes[2] of the canvas",
            "at childShapes[0] of a shape without id",
        ]
    );
}

#[test]
fn malformed_containers_read_as_empty() {
    let children = vec![json!({
        "resourceId": "x",
        "childShapes": {"not": "an array"},
        "outgoing": "flow1",
        "target": [1, 2],
    })];
    let shapes = collect(&children);
    assert_eq!(shapes.len(), 1);
    let x = shapes.first().unwrap();
    assert_eq!(x.outgoing().count(), 0);
    assert_eq!(x.target(), None);
}

#[test]
fn outgoing_skips_entries_without_string_ids() {
    let children = vec![
        json!({"outgoing": [{"resourceId": "a"}, "b", {"resourceId": 3}, {}, {"resourceId": ""}, {"resourceId": "c"}]}),
    ];
    let shapes = collect(&children);
    let out: Vec<&str> = shapes.first().unwrap().outgoing().collect();
    assert_eq!(out, vec!["a", "c"]);
}

#[test]
fn flags_accept_booleans_and_strings() {
    let children = vec![
        json!({"properties": {"isforcompensation": true}}),
        json!({"properties": {"isforcompensation": "true"}}),
        json!({"properties": {"isforcompensation": "false"}}),
        json!({"properties": {"isforcompensation": ""}}),
        json!({"properties": "isforcompensation"}),
    ];
    let flags: Vec<bool> = collect(&children)
        .iter()
        .map(|s| s.flag("isforcompensation"))
        .collect();
    assert_eq!(flags, vec![true, true, false, false, false]);
}

#[test]
fn canvas_check_explains_what_is_wrong() {
    let cases = [
        (json!(null), "null"),
        (json!([]), "an array"),
        (json!({"childShapes": []}), "no string stencil.id"),
        (
            json!({"stencil": {"id": "CMMNDiagram"}, "childShapes": []}),
            "'CMMNDiagram'",
        ),
        (json!({"stencil": {"id": "BPMNDiagram"}}), "no childShapes"),
        (
            json!({"stencil": {"id": "BPMNDiagram"}, "childShapes": {}}),
            "an object",
        ),
    ];
    for (doc, expected) in cases {
        let message = canvas_children(&doc).unwrap_err();
        assert!(
            message.contains(expected),
            "{message:?} should mention {expected:?}"
        );
    }
    let ok = json!({"stencil": {"id": "BPMNDiagram"}, "childShapes": [1]});
    assert_eq!(canvas_children(&ok).unwrap().len(), 1);
}

#[test]
fn long_ids_are_cut_short_in_messages() {
    use super::shapes::quote;
    assert_eq!(quote("abc"), "'abc'");
    let exactly = "é".repeat(100);
    assert_eq!(quote(&exactly), format!("'{exactly}'"));
    let long = "é".repeat(101);
    assert_eq!(quote(&long), format!("'{}…'", "é".repeat(100)));
}
