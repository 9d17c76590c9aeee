//! Editor-JSON validation against the real Flowable converter fixtures in the shared folder
//! (`<repo>/../shared/fixtures/flowable`, never copied into this repository).
//!
//! When that folder is absent, each test prints `skipped: ...` and returns. When it is present,
//! every listed fixture must exist and parse, so a broken checkout fails instead of passing.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use domain::{validate_editor_json, RuleCode, ValidationReport};
use serde_json::{json, Value};

const FIXTURE_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/flowable"
);

const ALL: [&str; 10] = [
    "test.usertaskmodel.json",
    "test.simplemodel.json",
    "test.flownodemodel.json",
    "test.subprocessmodel.json",
    "test.boundaryeventmodel.json",
    "test.completemodel.json",
    "test.poolmodel.json",
    "test.boundaryeventassociationmodel.json",
    "test.throwevent.json",
    "test.eventsubprocesssequenceflow.json",
];

/// The parsed fixture, or `None` (after saying so) when the shared folder is absent.
/// Panics when the folder is there but the file is missing or is not JSON.
fn fixture(name: &str) -> Option<Value> {
    let dir = Path::new(FIXTURE_DIR);
    if !dir.is_dir() {
        eprintln!("skipped: shared fixtures not found at {}", dir.display());
        return None;
    }
    let path: PathBuf = dir.join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "shared fixtures present but {} unreadable: {e}",
            path.display()
        )
    });
    Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}")))
}

fn codes(findings: &[domain::Finding]) -> Vec<(RuleCode, Option<&str>)> {
    findings
        .iter()
        .map(|f| (f.rule, f.element_id.as_deref()))
        .collect()
}

/// Validates the fixture and asserts it is clean: no errors and no warnings.
fn assert_clean(name: &str) {
    let Some(doc) = fixture(name) else { return };
    let report = validate_editor_json(&doc);
    assert_eq!(report, ValidationReport::default(), "{name}");
    assert!(report.is_valid());
}

#[test]
fn usertaskmodel_is_clean() {
    assert_clean("test.usertaskmodel.json");
}

#[test]
fn simplemodel_is_clean() {
    assert_clean("test.simplemodel.json");
}

#[test]
fn flownodemodel_without_canvas_resource_id_is_clean() {
    assert_clean("test.flownodemodel.json");
}

#[test]
fn subprocessmodel_with_boundary_timer_is_clean() {
    assert_clean("test.subprocessmodel.json");
}

#[test]
fn boundaryeventmodel_is_clean() {
    assert_clean("test.boundaryeventmodel.json");
}

#[test]
fn completemodel_is_clean() {
    assert_clean("test.completemodel.json");
}

#[test]
fn poolmodel_start_in_lane_is_clean() {
    assert_clean("test.poolmodel.json");
}

#[test]
fn boundaryeventassociationmodel_compensation_handlers_are_clean() {
    assert_clean("test.boundaryeventassociationmodel.json");
}

#[test]
fn eventsubprocess_with_nested_flows_is_clean() {
    assert_clean("test.eventsubprocesssequenceflow.json");
}

#[test]
fn throwevent_lacks_a_start_and_warns() {
    let Some(doc) = fixture("test.throwevent.json") else {
        return;
    };
    let report = validate_editor_json(&doc);
    assert_eq!(
        codes(&report.errors),
        vec![(RuleCode::MissingStartEvent, None)]
    );
    assert_eq!(
        codes(&report.warnings),
        vec![
            (RuleCode::MissingEndEvent, None),
            (
                RuleCode::DisconnectedFlowNode,
                Some("throwCompensationEvent")
            ),
        ]
    );
}

#[test]
fn every_listed_fixture_is_present_and_only_throwevent_has_errors() {
    if fixture(ALL[0]).is_none() {
        return;
    }
    for name in ALL {
        let report = validate_editor_json(&fixture(name).unwrap());
        let expected = if name == "test.throwevent.json" { 1 } else { 0 };
        assert_eq!(report.errors.len(), expected, "{name}: {:?}", report.errors);
    }
}

/// Mutates the element at `pointer` in a fixture and validates the result.
fn mutated(name: &str, pointer: &str, replacement: Value) -> Option<ValidationReport> {
    let mut doc = fixture(name)?;
    *doc.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{name} has no {pointer}")) = replacement;
    Some(validate_editor_json(&doc))
}

#[test]
fn poolmodel_flow_to_nowhere_is_named_by_its_overrideid() {
    // childShapes[3] is flow3 (resourceId sid-A4D5...); overrideid wins in findings.
    let Some(report) = mutated(
        "test.poolmodel.json",
        "/childShapes/3/target",
        json!({"resourceId": "sid-123"}),
    ) else {
        return;
    };
    assert_eq!(
        codes(&report.errors),
        vec![(RuleCode::DanglingSequenceFlowTarget, Some("flow3"))]
    );
    assert!(report.errors[0].message.contains("sid-123"));
}

#[test]
fn poolmodel_without_its_lane_start_is_missing_a_start_event() {
    // Pool → Lane 1 → childShapes[0] is the start event; make it a plain task.
    let Some(report) = mutated(
        "test.poolmodel.json",
        "/childShapes/0/childShapes/0/childShapes/0/stencil/id",
        json!("UserTask"),
    ) else {
        return;
    };
    assert_eq!(
        codes(&report.errors),
        vec![(RuleCode::MissingStartEvent, None)]
    );
}

#[test]
fn subprocessmodel_flow_dropped_from_outgoing_has_no_source() {
    // start1 (childShapes[0]) is the only source of the first flow.
    let Some(report) = mutated(
        "test.subprocessmodel.json",
        "/childShapes/0/outgoing",
        json!([]),
    ) else {
        return;
    };
    assert_eq!(
        codes(&report.errors),
        vec![(
            RuleCode::SequenceFlowWithoutSource,
            Some("sid-04DAFAA0-34C1-48DF-BAD5-1038344BBFA9")
        )]
    );
    assert_eq!(
        codes(&report.warnings),
        vec![(RuleCode::DisconnectedFlowNode, Some("start1"))]
    );
}

#[test]
fn eventsubprocess_nested_flow_target_is_checked() {
    // childShapes[7] is the EventSubProcess; its childShapes[3] is a nested SequenceFlow.
    let Some(report) = mutated(
        "test.eventsubprocesssequenceflow.json",
        "/childShapes/7/childShapes/3/target/resourceId",
        json!("nowhere"),
    ) else {
        return;
    };
    assert_eq!(
        codes(&report.errors),
        vec![(
            RuleCode::DanglingSequenceFlowTarget,
            Some("sid-45B32336-D4E3-4576-8377-2D81C0EE02C4")
        )]
    );
}
