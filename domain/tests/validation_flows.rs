//! Editor-JSON validation of sequence flows: `DanglingSequenceFlowTarget` and
//! `SequenceFlowWithoutSource`. Hand-made documents; assertions on rule codes and element ids.

#![allow(clippy::unwrap_used)]

#[path = "validation_support.rs"]
mod support;

use domain::RuleCode::*;
use serde_json::json;
use support::*;

// --- 6. DanglingSequenceFlowTarget --------------------------------------------------------

#[test]
fn flow_targets_must_name_a_shape_by_resource_id() {
    let a = || node("a", "UserTask", &["f1"]);
    let renamed =
        node("sid-b", "UserTask", &[]).tap(|n| n["properties"]["overrideid"] = json!("b"));
    let cases = [
        (
            edge("f1", "SequenceFlow", json!({"resourceId": "nowhere"})),
            true,
        ),
        (edge("f1", "SequenceFlow", json!({"resourceId": ""})), true),
        (edge("f1", "SequenceFlow", json!({"resourceId": 12})), true),
        (edge("f1", "SequenceFlow", json!({})), true),
        (edge("f1", "SequenceFlow", json!("a")), true),
        (node("f1", "SequenceFlow", &["a"]), true), // no target at all
        (edge("f1", "SequenceFlow", json!({"resourceId": "b"})), true), // an overrideid
        (
            edge("f1", "SequenceFlow", json!({"resourceId": "sid-b"})),
            false,
        ),
    ];
    for (f, dangling) in cases {
        let d = doc(vec![a(), renamed.clone(), f.clone()]);
        let expected = if dangling {
            vec![c(DanglingSequenceFlowTarget, "f1")]
        } else {
            vec![]
        };
        assert_eq!(errors(&d), expected, "{f}");
    }
}

#[test]
fn dangling_flow_is_named_by_its_element_id_even_when_nested() {
    let bad = flow("sid-f", "sid-123").tap(|f| f["properties"]["overrideid"] = json!("flow3"));
    let sub = container(
        "sub",
        "SubProcess",
        &[],
        vec![
            node("s", "StartNoneEvent", &["sid-f", "ok"]),
            bad,
            flow("ok", "t"),
            node("t", "UserTask", &[]),
        ],
    );
    let sub = sub.tap(|s| s["outgoing"] = json!([])); // unconnected sub: only a warning
    let d = doc(vec![sub]);
    assert_eq!(errors(&d), vec![c(DanglingSequenceFlowTarget, "flow3")]);
    // "ok" has a target but no source, inside the sub-process.
    let d2 = doc(vec![container(
        "sub",
        "SubProcess",
        &[],
        vec![flow("ok", "start")],
    )]);
    assert_eq!(errors(&d2), vec![c(SequenceFlowWithoutSource, "ok")]);
}

#[test]
fn flow_targets_may_cross_nesting_levels() {
    let lane = container("lane", "Lane", &[], vec![node("task", "UserTask", &[])]);
    let pool = container("pool", "Pool", &[], vec![lane]);
    let d = doc(vec![
        pool,
        node("a", "UserTask", &["f1"]),
        flow("f1", "task"),
    ]);
    assert_eq!(errors(&d), vec![]);
    assert_eq!(warnings(&d), vec![]);
}

// --- 7. SequenceFlowWithoutSource ---------------------------------------------------------

#[test]
fn flows_need_a_shape_listing_them_in_outgoing() {
    let d = doc(vec![flow("f1", "end")]);
    assert_eq!(errors(&d), vec![c(SequenceFlowWithoutSource, "f1")]);
    // Listed by a node nested two levels down: fine.
    let lane = container("lane", "Lane", &[], vec![node("a", "UserTask", &["f1"])]);
    let d = doc(vec![
        container("pool", "Pool", &[], vec![lane]),
        flow("f1", "end"),
    ]);
    assert_eq!(errors(&d), vec![]);
}

#[test]
fn a_flow_listing_itself_is_not_its_own_source() {
    let f = flow("f1", "end").tap(|f| f["outgoing"] = json!([{"resourceId": "f1"}]));
    assert_eq!(
        errors(&doc(vec![f])),
        vec![c(SequenceFlowWithoutSource, "f1")]
    );
}

#[test]
fn malformed_outgoing_lists_source_nothing() {
    for outgoing in [
        json!("f1"),
        json!({"resourceId": "f1"}),
        json!(["f1"]),
        json!([{"resourceId": 1}]),
    ] {
        let a = node("a", "UserTask", &[]).tap(|n| n["outgoing"] = outgoing.clone());
        let d = doc(vec![a, flow("f1", "end")]);
        assert_eq!(
            errors(&d),
            vec![c(SequenceFlowWithoutSource, "f1")],
            "{outgoing}"
        );
        assert_eq!(
            warnings(&d),
            vec![c(DisconnectedFlowNode, "a")],
            "{outgoing}"
        );
    }
}

#[test]
fn flow_without_resource_id_is_reported_once_as_missing_id() {
    let f = flow("x", "nowhere").tap(|f| {
        f.as_object_mut().unwrap().remove("resourceId");
    });
    assert_eq!(
        errors(&doc(vec![f])),
        vec![
            (MissingResourceId, None),
            (DanglingSequenceFlowTarget, None)
        ]
    );
}

#[test]
fn bad_target_and_no_source_both_reported_in_document_order() {
    let d = doc(vec![flow("f2", "nowhere"), flow("f1", "end")]);
    assert_eq!(
        errors(&d),
        vec![
            c(DanglingSequenceFlowTarget, "f2"),
            c(SequenceFlowWithoutSource, "f2"),
            c(SequenceFlowWithoutSource, "f1"),
        ]
    );
}
