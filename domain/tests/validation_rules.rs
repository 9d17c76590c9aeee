//! Editor-JSON validation of the document and shape structure: `NotACanvas`,
//! `MissingResourceId`, `MissingStencil`, `DuplicateElementId`. Hand-made documents; assertions
//! are on rule codes and element ids, never on message wording.

#![allow(clippy::unwrap_used)]

#[path = "validation_support.rs"]
mod support;

use domain::{validate_editor_json, RuleCode::*};
use serde_json::{json, Value};
use support::*;

fn annotation(id: &str) -> Value {
    node(id, "TextAnnotation", &[])
}

fn annotation_as(resource_id: &str, overrideid: Value) -> Value {
    annotation(resource_id).tap(|n| n["properties"]["overrideid"] = overrideid)
}

#[test]
fn clean_model_whatever_the_canvas_resource_id() {
    let report = validate_editor_json(&doc(vec![]));
    assert!(report.is_valid());
    assert!(report.warnings.is_empty());
    for canvas_id in [json!(976836), Value::Null, json!(""), json!({"x": 1})] {
        let d = doc(vec![]).tap(|d| d["resourceId"] = canvas_id);
        assert_eq!(validate_editor_json(&d), report);
    }
    let no_id = doc(vec![]).tap(|d| {
        d.as_object_mut().unwrap().remove("resourceId");
    });
    assert_eq!(validate_editor_json(&no_id), report);
}

// --- 1. NotACanvas -----------------------------------------------------------------------

#[test]
fn non_canvas_documents_report_only_not_a_canvas() {
    let docs = [
        json!(null),
        json!([]),
        json!("x"),
        json!(42),
        json!(true),
        json!({}),
        json!({"stencil": "BPMNDiagram", "childShapes": []}),
        json!({"stencil": {"id": "bpmndiagram"}, "childShapes": []}),
        json!({"stencil": {"id": "CMMNDiagram"}, "childShapes": []}),
        json!({"stencil": {"id": ["BPMNDiagram"]}, "childShapes": []}),
        json!({"stencil": {"id": "BPMNDiagram"}}),
        json!({"stencil": {"id": "BPMNDiagram"}, "childShapes": null}),
        json!({"stencil": {"id": "BPMNDiagram"}, "childShapes": {"0": {}}}),
        json!([{"stencil": {"id": "BPMNDiagram"}, "childShapes": []}]),
    ];
    for d in docs {
        let report = validate_editor_json(&d);
        assert_eq!(codes(&report.errors), vec![(NotACanvas, None)], "{d}");
        assert!(report.warnings.is_empty(), "{d}");
        assert!(!report.errors[0].message.is_empty());
        assert!(!report.is_valid());
    }
}

#[test]
fn empty_canvas_is_a_canvas_without_start_or_end() {
    let d = canvas(vec![]);
    assert_eq!(errors(&d), vec![(MissingStartEvent, None)]);
    assert_eq!(warnings(&d), vec![(MissingEndEvent, None)]);
}

// --- 2. MissingResourceId -----------------------------------------------------------------

#[test]
fn shapes_without_a_string_resource_id_at_any_depth() {
    let missing = annotation("x").tap(|n| {
        n.as_object_mut().unwrap().remove("resourceId");
    });
    let numeric = annotation("x").tap(|n| n["resourceId"] = json!(7));
    let null = annotation("x").tap(|n| n["resourceId"] = Value::Null);
    let empty = annotation("x").tap(|n| n["resourceId"] = json!(""));
    let named = empty
        .clone()
        .tap(|n| n["properties"]["overrideid"] = json!("note"));
    let sub = container("sub", "SubProcess", &[], vec![missing, numeric]);
    let lane = container("lane", "Lane", &[], vec![null]);
    let pool = container("pool", "Pool", &[], vec![lane]);
    let d = doc(vec![sub, pool, empty, named]);
    assert_eq!(
        errors(&d),
        vec![
            (MissingResourceId, None),
            (MissingResourceId, None),
            (MissingResourceId, None),
            (MissingResourceId, None),
            c(MissingResourceId, "note"), // named by its overrideid
        ]
    );
}

#[test]
fn non_object_child_shapes_lack_both_fields() {
    let sub = container(
        "sub",
        "SubProcess",
        &[],
        vec![json!(1), json!("x"), json!(null)],
    );
    let d = doc(vec![sub, json!([]), json!(true)]);
    let expected: Vec<_> = (0..5)
        .flat_map(|_| [(MissingResourceId, None), (MissingStencil, None)])
        .collect();
    assert_eq!(errors(&d), expected);
}

// --- 3. MissingStencil --------------------------------------------------------------------

#[test]
fn shapes_without_a_string_stencil_id() {
    let bad = [
        json!(null),
        json!("UserTask"),
        json!({}),
        json!({"id": 3}),
        json!({"id": ""}),
        json!({"id": null}),
    ];
    let shapes: Vec<Value> = bad
        .iter()
        .enumerate()
        .map(|(i, s)| annotation(&format!("s{i}")).tap(|n| n["stencil"] = s.clone()))
        .collect();
    let mut no_stencil = annotation("gone");
    no_stencil.as_object_mut().unwrap().remove("stencil");
    let nested = container("sub", "SubProcess", &["f1"], vec![no_stencil]);
    let d = doc(vec![
        container("wrap", "Pool", &[], shapes),
        nested,
        flow("f1", "end"),
    ]);
    let mut expected: Vec<_> = (0..bad.len())
        .map(|i| c(MissingStencil, &format!("s{i}")))
        .collect();
    expected.push(c(MissingStencil, "gone"));
    assert_eq!(errors(&d), expected);
}

#[test]
fn both_fields_missing_are_both_reported_per_shape_in_order() {
    let d = doc(vec![json!({"properties": {}}), json!({"resourceId": "y"})]);
    assert_eq!(
        errors(&d),
        vec![
            (MissingResourceId, None),
            (MissingStencil, None),
            c(MissingStencil, "y"),
        ]
    );
}

// --- 4. DuplicateElementId ----------------------------------------------------------------

#[test]
fn duplicate_resource_ids_are_reported_once_per_id_in_first_occurrence_order() {
    let d = doc(vec![
        annotation("note"),
        annotation("end"),
        annotation("note"),
        annotation("note"),
    ]);
    // "end" first occurs (in start_end) before "note".
    assert_eq!(
        errors(&d),
        vec![c(DuplicateElementId, "end"), c(DuplicateElementId, "note")]
    );
}

#[test]
fn overrideid_duplicating_another_shapes_resource_id() {
    let shadow = annotation_as("sid-1", json!("start"));
    assert_eq!(
        errors(&doc(vec![shadow])),
        vec![c(DuplicateElementId, "start")]
    );
}

#[test]
fn duplicates_across_nesting_levels() {
    let inner = annotation_as("sid-2", json!("a"));
    let lane = container("lane", "Lane", &[], vec![inner]);
    let pool = container("pool", "Pool", &[], vec![lane]);
    let d = doc(vec![annotation("a"), pool]);
    assert_eq!(errors(&d), vec![c(DuplicateElementId, "a")]);
}

#[test]
fn element_ids_not_resource_ids_must_be_unique() {
    // Own overrideid equal to own resourceId: one element, no duplicate.
    let same = annotation_as("n1", json!("n1"));
    // Same resourceId, different overrideids: distinct element ids, so no DuplicateElementId.
    let a = annotation_as("r", json!("a"));
    let b = annotation_as("r", json!("b"));
    assert_eq!(errors(&doc(vec![same, a, b])), vec![]);
    // An empty or non-string overrideid falls back to the resourceId.
    let d1 = annotation_as("dup", json!(""));
    let d2 = annotation_as("dup", json!(null));
    let d3 = annotation_as("dup", json!(5));
    assert_eq!(
        errors(&doc(vec![d1, d2, d3])),
        vec![c(DuplicateElementId, "dup")]
    );
}
