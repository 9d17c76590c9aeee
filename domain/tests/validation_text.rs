//! `validate_editor_json_text` (the rules on the outline of the text) gives the report that
//! `validate_editor_json` gives on the decoded `Value`: on every fixture, on the rule tests'
//! documents (`support::errors` and `warnings` compare both), and on the JSON corners where
//! the two decodings could part: escapes, repeated keys, values of every type where the rules
//! expect another.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use domain::{validate_editor_json, validate_editor_json_text, ValidationReport};
use serde_json::Value;

/// Both reports of `text`, asserted equal.
fn both(text: &str) -> ValidationReport {
    both_named(text, text)
}

/// As [`both`], naming the document `name` when they differ.
fn both_named(name: &str, text: &str) -> ValidationReport {
    let value: Value = serde_json::from_str(text).unwrap();
    let from_value = validate_editor_json(&value);
    let from_text = validate_editor_json_text(text).unwrap();
    assert_eq!(from_text, from_value, "{name}");
    from_text
}

/// The `.json` files of `dir`.
fn json_files(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path.display().to_string(), text)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_shared_fixture_gets_the_same_report() {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/flowable"
    ));
    if !dir.is_dir() {
        eprintln!("skipped: shared fixtures not found at {}", dir.display());
        return;
    }
    let files = json_files(dir);
    assert!(files.len() >= 10, "{} JSON fixtures", files.len());
    for (path, text) in files {
        both_named(&path, &text);
    }
}

#[test]
fn every_local_fixture_gets_the_same_report() {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/validation"
    ));
    for (path, text) in json_files(dir) {
        both_named(&path, &text);
    }
}

#[test]
fn escapes_and_repeated_keys_read_as_a_value_reads_them() {
    // An escaped key is the key; an escaped string is the string.
    let report = both(
        r#"{"stencil": {"id": "BPMNDiagram"}, "childShapes": [
            {"resourc\u0065Id": "s\u0031", "stencil": {"id": "StartNoneEvent"}, "outgoing": [{"resourceId": "f"}]},
            {"resourceId": "f", "stencil": {"id": "SequenceFlow"}, "target": {"resourceId": "e\"1"}},
            {"resourceId": "e\"1", "stencil": {"id": "EndNoneEvent"}}
        ]}"#,
    );
    assert_eq!(report, ValidationReport::default());
    // A repeated key: the last one counts, wherever it is.
    let report = both(
        r#"{"stencil": {"id": "nope"}, "stencil": {"id": "BPMNDiagram"}, "childShapes": [
            {"resourceId": "a", "resourceId": "", "stencil": {"id": "UserTask"}, "stencil": 3}
        ], "childShapes": [
            {"resourceId": "b", "stencil": {"id": "StartNoneEvent"}, "resourceId": "c"}
        ]}"#,
    );
    assert_eq!(report.errors, vec![]);
    assert_eq!(report.warnings[1].element_id.as_deref(), Some("c"));
}

#[test]
fn values_of_every_type_where_another_is_expected() {
    let values = [
        "null",
        "true",
        "false",
        "0",
        "-1.5e3",
        "\"\"",
        "\"x\"",
        "[]",
        "[1, \"a\"]",
        "{}",
        "{\"id\": 1}",
    ];
    for value in values {
        both(value);
        both(&format!(
            r#"{{"stencil": {{"id": {value}}}, "childShapes": []}}"#
        ));
        both(&format!(
            r#"{{"stencil": {{"id": "BPMNDiagram"}}, "childShapes": {value}}}"#
        ));
        for field in [
            "resourceId",
            "stencil",
            "properties",
            "outgoing",
            "target",
            "childShapes",
        ] {
            both(&format!(
                r#"{{"stencil": {{"id": "BPMNDiagram"}}, "childShapes": [
                    {value},
                    {{"{field}": {value}, "stencil": {{"id": "UserTask"}}}},
                    {{"resourceId": "t", "stencil": {{"id": "SequenceFlow"}}, "target": {{"resourceId": {value}}},
                      "properties": {{"overrideid": {value}, "isforcompensation": {value}}},
                      "outgoing": [{value}, {{"resourceId": {value}}}]}}
                ]}}"#
            ));
        }
    }
}

#[test]
fn text_that_is_not_json_is_an_error() {
    assert!(validate_editor_json_text("{\"stencil\": ").is_err());
    assert!(validate_editor_json_text("{} x").is_err());
}
