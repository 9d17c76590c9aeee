//! Builders and assertions shared by the `validation_*` test files, which include this file with
//! `#[path = "validation_support.rs"] mod support;`. Cargo also builds it as a test target of
//! its own, which holds no tests.

#![allow(dead_code, clippy::unwrap_used)]

use domain::{
    validate_editor_json, validate_editor_json_text, Finding, RuleCode, ValidationReport,
};
use serde_json::{json, Value};

/// A finding reduced to what tests assert on: rule code and element id.
pub type Code = (RuleCode, Option<String>);

/// A `BPMNDiagram` canvas holding `children`.
pub fn canvas(children: Vec<Value>) -> Value {
    let mut canvas = json!({
        "resourceId": "canvas",
        "stencil": {"id": "BPMNDiagram"},
        "properties": {"process_id": "p"},
    });
    // Moved in, not passed through `json!` (which would serialise a deep copy recursively).
    canvas["childShapes"] = Value::Array(children);
    canvas
}

/// A shape without children.
pub fn node(id: &str, stencil: &str, outgoing: &[&str]) -> Value {
    container(id, stencil, outgoing, vec![])
}

/// A shape with `childShapes`.
pub fn container(id: &str, stencil: &str, outgoing: &[&str], children: Vec<Value>) -> Value {
    let outgoing: Vec<Value> = outgoing.iter().map(|o| json!({"resourceId": o})).collect();
    let mut shape = json!({
        "resourceId": id,
        "stencil": {"id": stencil},
        "properties": {},
        "outgoing": outgoing,
    });
    shape["childShapes"] = Value::Array(children);
    shape
}

/// An edge with the given `target` value; its `outgoing` repeats the target as the editor does.
pub fn edge(id: &str, stencil: &str, target: Value) -> Value {
    let mut e = node(id, stencil, &[]);
    if let Some(t) = target.get("resourceId") {
        e["outgoing"] = json!([{"resourceId": t}]);
    }
    e["target"] = target;
    e
}

/// A `SequenceFlow` to `target`.
pub fn flow(id: &str, target: &str) -> Value {
    edge(id, "SequenceFlow", json!({"resourceId": target}))
}

/// start --f0--> end, a minimal clean model.
pub fn start_end() -> Vec<Value> {
    vec![
        node("start", "StartNoneEvent", &["f0"]),
        flow("f0", "end"),
        node("end", "EndNoneEvent", &[]),
    ]
}

/// `start_end()` plus `more` on the canvas.
pub fn doc(more: Vec<Value>) -> Value {
    let mut shapes = start_end();
    shapes.extend(more);
    canvas(shapes)
}

pub fn codes(findings: &[Finding]) -> Vec<Code> {
    findings
        .iter()
        .map(|f| (f.rule, f.element_id.clone()))
        .collect()
}

/// `doc`'s report, asserted to be the same from its text as from the value.
pub fn report(doc: &Value) -> ValidationReport {
    let report = validate_editor_json(doc);
    let text = serde_json::to_string(doc).unwrap();
    assert_eq!(validate_editor_json_text(&text).unwrap(), report, "{text}");
    report
}

pub fn errors(doc: &Value) -> Vec<Code> {
    codes(&report(doc).errors)
}

pub fn warnings(doc: &Value) -> Vec<Code> {
    codes(&report(doc).warnings)
}

/// A finding about element `id`.
pub fn c(rule: RuleCode, id: &str) -> Code {
    (rule, Some(id.to_owned()))
}

/// Edit a value in place and hand it back: `node(..).tap(|n| n["x"] = json!(1))`.
pub trait Tap {
    fn tap(self, f: impl FnOnce(&mut Value)) -> Value;
}

impl Tap for Value {
    fn tap(mut self, f: impl FnOnce(&mut Value)) -> Value {
        f(&mut self);
        self
    }
}
