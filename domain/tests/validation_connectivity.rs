//! Editor-JSON validation of `DisconnectedFlowNode` warnings: which shapes are flow nodes,
//! and how boundary events, compensation, event sub-processes and ad-hoc children are treated.

#![allow(clippy::unwrap_used)]

#[path = "validation_support.rs"]
mod support;

use domain::RuleCode::*;
use serde_json::{json, Value};
use support::*;

// --- 9. DisconnectedFlowNode (warning) ----------------------------------------------------

#[test]
fn isolated_flow_nodes_warn_in_document_order() {
    let stencils = [
        "UserTask",
        "ExclusiveGateway",
        "CatchTimerEvent",
        "ThrowSignalEvent",
        "SubProcess",
        "CallActivity",
        "BusinessRule",
        "EndNoneEvent",
    ];
    let nodes: Vec<Value> = stencils
        .iter()
        .map(|s| node(&format!("n-{s}"), s, &[]))
        .collect();
    let expected: Vec<Code> = stencils
        .iter()
        .map(|s| c(DisconnectedFlowNode, &format!("n-{s}")))
        .collect();
    let d = doc(nodes);
    assert_eq!(errors(&d), vec![]);
    assert_eq!(warnings(&d), expected);
}

#[test]
fn one_sequence_flow_either_way_connects() {
    let d = doc(vec![
        node("a", "UserTask", &["f1"]),
        flow("f1", "b"),
        node("b", "UserTask", &[]),
    ]);
    assert_eq!(warnings(&d), vec![]);
}

#[test]
fn non_flow_nodes_never_warn() {
    let others = [
        "TextAnnotation",
        "DataStore",
        "DataObject",
        "Pool",
        "Lane",
        "Group",
        "MessageFlow",
        "Association",
    ];
    let nodes: Vec<Value> = others
        .iter()
        .map(|s| node(&format!("n-{s}"), s, &[]))
        .collect();
    assert_eq!(warnings(&doc(nodes)), vec![]);
}

#[test]
fn associations_do_not_connect_ordinary_nodes() {
    let note = node("note", "TextAnnotation", &[]);
    let a = node("a", "UserTask", &["assoc"]);
    let assoc = edge("assoc", "Association", json!({"resourceId": "note"}));
    let d = doc(vec![note, a, assoc]);
    assert_eq!(warnings(&d), vec![c(DisconnectedFlowNode, "a")]);
    assert_eq!(errors(&d), vec![]);
}

#[test]
fn boundary_events_count_only_their_own_outgoing_flows() {
    // The host lists both boundary events in its outgoing (attachment), plus its real flow.
    let host = node("task", "UserTask", &["f1", "b1", "b2"]);
    let with_flow = node("b1", "BoundaryTimerEvent", &["f2"]);
    let without = node("b2", "BoundaryErrorEvent", &[]);
    let shapes = vec![
        node("s", "StartNoneEvent", &["f3"]),
        flow("f3", "task"),
        host,
        with_flow,
        without,
        flow("f1", "end"),
        flow("f2", "end"),
        node("end", "EndNoneEvent", &[]),
        node("b3", "BoundaryMessageEvent", &[]),
        flow("f4", "b3"),
        node("x", "UserTask", &["f4"]),
    ];
    let d = canvas(shapes);
    assert_eq!(errors(&d), vec![]);
    // b3 is targeted by a flow, but incoming flows do not count for boundary events.
    assert_eq!(
        warnings(&d),
        vec![c(DisconnectedFlowNode, "b2"), c(DisconnectedFlowNode, "b3")]
    );
}

#[test]
fn compensation_is_connected_through_associations() {
    let handler = |flag: Value| {
        node("handler", "ScriptTask", &[]).tap(|h| h["properties"]["isforcompensation"] = flag)
    };
    let comp = node("comp", "BoundaryCompensationEvent", &["assoc"]);
    let assoc = edge("assoc", "Association", json!({"resourceId": "handler"}));
    let host = node("task", "ServiceTask", &["f1", "comp"]);
    let base = vec![host, flow("f1", "end"), comp, assoc];
    for (flag, handler_warns) in [
        (json!(true), false),
        (json!("true"), false),
        (json!(false), true),
        (json!(""), true),
    ] {
        let mut shapes = base.clone();
        shapes.push(handler(flag.clone()));
        let expected = if handler_warns {
            vec![c(DisconnectedFlowNode, "handler")]
        } else {
            vec![]
        };
        assert_eq!(
            warnings(&doc(shapes)),
            expected,
            "isforcompensation = {flag}"
        );
    }
    // A compensation boundary event with nothing attached warns.
    let lone = node("comp2", "BoundaryCompensationEvent", &[]);
    assert_eq!(
        warnings(&doc(vec![lone])),
        vec![c(DisconnectedFlowNode, "comp2")]
    );
}

#[test]
fn event_sub_processes_and_ad_hoc_children_need_no_flows() {
    let esp = container(
        "esp",
        "EventSubProcess",
        &[],
        vec![
            node("ms", "StartMessageEvent", &["ef"]),
            flow("ef", "ee"),
            node("ee", "EndNoneEvent", &[]),
        ],
    );
    let adhoc = container(
        "adhoc",
        "AdhocSubProcess",
        &[],
        vec![node("t1", "UserTask", &[]), node("t2", "UserTask", &[])],
    );
    let d = doc(vec![esp, adhoc]);
    assert_eq!(errors(&d), vec![]);
    // The ad-hoc sub-process itself is an ordinary activity.
    assert_eq!(warnings(&d), vec![c(DisconnectedFlowNode, "adhoc")]);
}

#[test]
fn a_flow_without_resource_id_still_reaches_its_target() {
    let f = flow("x", "b").tap(|f| {
        f.as_object_mut().unwrap().remove("resourceId");
    });
    let d = doc(vec![f, node("b", "UserTask", &[])]);
    assert_eq!(errors(&d), vec![(MissingResourceId, None)]);
    assert_eq!(warnings(&d), vec![]);
}
