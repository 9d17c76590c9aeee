//! Editor-JSON validation on awkward input: JSON files under `tests/fixtures/validation/`, wrong
//! types anywhere, pseudo-random junk, very deep nesting, multi-MiB documents, and the wire form
//! of the report. Assertions on rule codes and element ids, never on message wording.

#![allow(clippy::unwrap_used)]

#[path = "validation_support.rs"]
mod support;

use std::time::{Duration, Instant};

use domain::{validate_editor_json, RuleCode::*, ValidationReport};
use serde_json::{json, Value};
use support::*;

fn local_fixture(name: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/validation/").to_owned() + name;
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Findings as `[rule code, element id]` pairs, as written in the `*.expected.json` files.
fn wire_codes(findings: &[domain::Finding]) -> Value {
    let pairs: Vec<Value> = findings
        .iter()
        .map(|f| json!([f.rule, f.element_id]))
        .collect();
    Value::Array(pairs)
}

#[test]
fn kitchen_sink_file_matches_its_expected_findings() {
    let report = validate_editor_json(&local_fixture("kitchen_sink.json"));
    let expected = local_fixture("kitchen_sink.expected.json");
    assert_eq!(wire_codes(&report.errors), expected["errors"]);
    assert_eq!(wire_codes(&report.warnings), expected["warnings"]);
}

#[test]
fn pool_lanes_file_with_boundary_timer_is_clean() {
    let report = validate_editor_json(&local_fixture("pool_lanes_clean.json"));
    assert_eq!(report, ValidationReport::default());
}

#[test]
fn wrong_types_anywhere_become_findings() {
    let shapes = vec![
        node("start", "StartNoneEvent", &["f1"]).tap(|n| n["properties"] = json!("oops")),
        flow("f1", "end").tap(|f| f["childShapes"] = json!(17)),
        node("end", "EndNoneEvent", &[]).tap(|n| n["outgoing"] = json!({"resourceId": "f1"})),
        node("t", "UserTask", &[]).tap(|n| {
            n["childShapes"] = json!({"resourceId": "hidden", "stencil": {"id": "StartNoneEvent"}});
            n["target"] = json!([1, 2, 3]);
            n["bounds"] = json!("none");
            n["dockers"] = json!(null);
        }),
        flow("f2", "t").tap(|f| f["target"] = json!(["t"])),
        json!({"resourceId": ["x"], "stencil": {"id": {"nested": true}}, "properties": [], "outgoing": 5}),
    ];
    let report = validate_editor_json(&canvas(shapes));
    assert_eq!(
        codes(&report.errors),
        vec![
            (MissingResourceId, None),
            (MissingStencil, None),
            c(DanglingSequenceFlowTarget, "f2"),
            c(SequenceFlowWithoutSource, "f2"),
        ]
    );
    assert_eq!(codes(&report.warnings), vec![c(DisconnectedFlowNode, "t")]);
}

/// A small deterministic generator (no dependency needed), for junk documents.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }

    fn value(&mut self, depth: u32) -> Value {
        const KEYS: [&str; 8] = [
            "resourceId",
            "stencil",
            "id",
            "childShapes",
            "outgoing",
            "target",
            "properties",
            "overrideid",
        ];
        const STRINGS: [&str; 8] = [
            "",
            "a",
            "b",
            "SequenceFlow",
            "StartNoneEvent",
            "EndNoneEvent",
            "Pool",
            "BoundaryTimerEvent",
        ];
        let pick =
            |rng: &mut Self, list: &[&str]| list[rng.next(list.len() as u64) as usize].to_owned();
        match (self.next(if depth == 0 { 5 } else { 7 }), depth) {
            (0, _) => Value::Null,
            (1, _) => json!(self.next(2) == 0),
            (2, _) => json!(self.next(1000)),
            (3 | 4, _) => json!(pick(self, &STRINGS)),
            (5, d) => (0..self.next(4)).map(|_| self.value(d - 1)).collect(),
            (_, d) => {
                let mut map = serde_json::Map::new();
                for _ in 0..self.next(5) {
                    map.insert(pick(self, &KEYS), self.value(d - 1));
                }
                Value::Object(map)
            }
        }
    }
}

#[test]
fn junk_never_panics_and_is_deterministic() {
    let mut rng = Lcg(0x5eed);
    for _ in 0..3000 {
        let junk = rng.value(6);
        let docs = [
            junk.clone(),
            canvas(vec![junk.clone()]),
            canvas(vec![
                json!({"resourceId": "a", "stencil": {"id": "SubProcess"}, "childShapes": [junk.clone()], "outgoing": junk.clone()}),
            ]),
            doc(vec![junk.clone(), rng.value(4)]),
        ];
        for d in docs {
            let first = validate_editor_json(&d);
            assert_eq!(first, validate_editor_json(&d));
            assert_eq!(first, report(&d), "the text's report");
            assert!(first
                .errors
                .iter()
                .chain(&first.warnings)
                .all(|f| !f.message.is_empty()));
        }
    }
}

/// `levels` containers of `stencil`, one inside the other, around `innermost`. Built bottom-up
/// without recursion.
fn nested(levels: usize, stencil: &str, innermost: Vec<Value>) -> Value {
    let mut children = innermost;
    for level in (0..levels).rev() {
        children = vec![container(&format!("c{level}"), stencil, &[], children)];
    }
    canvas(children)
}

#[test]
fn very_deep_nesting_does_not_overflow_the_stack() {
    let inner = vec![
        node("s", "StartNoneEvent", &["f"]),
        flow("f", "e"),
        node("e", "EndNoneEvent", &[]),
    ];
    // Lanes keep the start at process level; sub-processes do not.
    let lanes = nested(100_000, "Lane", inner.clone());
    let report = validate_editor_json(&lanes);
    assert_eq!(codes(&report.errors), vec![]);
    assert_eq!(codes(&report.warnings), vec![]);
    let subs = nested(100_000, "SubProcess", inner);
    let report = validate_editor_json(&subs);
    assert_eq!(codes(&report.errors), vec![(MissingStartEvent, None)]);
    assert_eq!(report.warnings.len(), 100_000); // each sub-process is unconnected
    assert_eq!(report.warnings[0].element_id.as_deref(), Some("c0"));
    // serde_json drops values recursively, which this depth would overflow: leak them instead.
    std::mem::forget(lanes);
    std::mem::forget(subs);
}

/// A chain start → t0 → … → t(n-1) → end with editor-like padding on every shape.
fn big_chain(tasks: usize) -> Value {
    let pad = |mut v: Value| {
        v["bounds"] =
            json!({"lowerRight": {"x": 200.5, "y": 120.25}, "upperLeft": {"x": 100.5, "y": 40.25}});
        v["dockers"] = json!([{"x": 50, "y": 40}, {"x": 50, "y": 40}]);
        v["properties"]["documentation"] = json!("padding to reach a realistic document size");
        v
    };
    let mut shapes = Vec::with_capacity(2 * tasks + 3);
    shapes.push(pad(node("start", "StartNoneEvent", &["f-start"])));
    shapes.push(pad(flow("f-start", "t0")));
    for i in 0..tasks {
        let next = if i + 1 == tasks {
            "end".to_owned()
        } else {
            format!("t{}", i + 1)
        };
        shapes.push(pad(node(&format!("t{i}"), "UserTask", &[&format!("f{i}")])));
        shapes.push(pad(flow(&format!("f{i}"), &next)));
    }
    shapes.push(pad(node("end", "EndNoneEvent", &[])));
    canvas(shapes)
}

#[test]
fn five_mib_document_validates_in_linear_time() {
    let text = serde_json::to_string(&big_chain(9_000)).unwrap();
    assert!(text.len() >= 5 * 1024 * 1024, "only {} bytes", text.len());
    let d: Value = serde_json::from_str(&text).unwrap();
    let started = Instant::now();
    let report = validate_editor_json(&d);
    let elapsed = started.elapsed();
    assert_eq!(report, ValidationReport::default());
    // Generous even for unoptimised builds; a quadratic scan of 18k shapes would blow it.
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

#[test]
fn many_findings_in_a_big_document_stay_linear() {
    // Every flow dangles and has no source, every element id is duplicated: ~50k findings.
    let mut shapes: Vec<Value> = (0..10_000)
        .flat_map(|i| {
            [
                flow(&format!("f{i}"), "nowhere").tap(|f| f["outgoing"] = json!([])),
                node(&format!("f{i}"), "UserTask", &[]),
            ]
        })
        .collect();
    shapes.push(node("s", "StartNoneEvent", &[]));
    let started = Instant::now();
    let report = validate_editor_json(&canvas(shapes));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(report.errors.len(), 30_000);
    assert_eq!(report.errors[0], report.errors[0].clone());
    assert_eq!(report.errors[0].rule, DuplicateElementId);
    assert_eq!(report.errors[10_000].rule, DanglingSequenceFlowTarget);
    assert_eq!(report.errors[10_001].rule, SequenceFlowWithoutSource);
}

#[test]
fn a_huge_id_mentioned_by_many_findings_does_not_blow_up_messages() {
    // 20k id-less children of a container with a 1 MB id: each finding names the container.
    let huge = "x".repeat(1_000_000);
    let sub = container(&huge, "SubProcess", &[], vec![json!(0); 20_000]);
    let report = validate_editor_json(&canvas(vec![sub]));
    assert_eq!(report.errors.len(), 2 * 20_000 + 1);
    let total: usize = report.errors.iter().map(|f| f.message.len()).sum();
    assert!(total < 20_000 * 2 * 400, "{total} bytes of messages");
    assert!(report.errors.iter().all(|f| f.element_id.is_none()));
}

#[test]
fn report_wire_form_uses_kebab_codes_and_omits_absent_ids() {
    let d = canvas(vec![node("lonely", "UserTask", &[])]);
    let wire = serde_json::to_value(validate_editor_json(&d)).unwrap();
    assert_eq!(wire["errors"][0]["rule"], "missing-start-event");
    assert!(wire["errors"][0].get("elementId").is_none());
    assert_eq!(wire["warnings"][0]["rule"], "missing-end-event");
    assert_eq!(wire["warnings"][1]["rule"], "disconnected-flow-node");
    assert_eq!(wire["warnings"][1]["elementId"], "lonely");
    let back: ValidationReport = serde_json::from_value(wire).unwrap();
    assert_eq!(back, validate_editor_json(&d));
}
