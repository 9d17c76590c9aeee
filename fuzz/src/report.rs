//! Invariants of `domain::validate_editor_json`, checked on every fuzz input.
//!
//! Besides "never panics" (which libFuzzer checks by itself), every report must:
//! - keep the documented order: errors by rule group (shape fields, duplicate ids, start
//!   event, sequence flows), then warnings (end event, disconnected nodes);
//! - say `NotACanvas` alone, and exactly when the document is not a canvas;
//! - agree with a small reference model (a plain walk of `childShapes`, written from the rule
//!   descriptions in `domain/src/validation/mod.rs`) on the rules that need no graph reasoning:
//!   missing resourceId/stencil, duplicate ids (and their order), start/end events, dangling
//!   targets and flows without a source;
//! - stay linear in size: report text is bounded by a constant times the input size;
//! - survive a serde round trip unchanged.

use std::collections::{HashMap, HashSet};

use domain::{Finding, RuleCode, ValidationReport};
use serde_json::Value;

/// Bytes of report (messages and element ids) allowed per byte of input, plus a constant.
/// Generous: a finding names at most two quoted ids (each cut at 100 characters) and its own
/// stencil, so only a super-linear blow-up can break it.
const REPORT_BYTES_PER_INPUT_BYTE: usize = 2_000;
const REPORT_BYTES_CONSTANT: usize = 4_096;

/// Panics (so libFuzzer records a crash) when `report` breaks an invariant for `doc`.
/// `input_len` is the size of the input the document came from, for the size bound.
pub fn check(doc: &Value, report: &ValidationReport, input_len: usize) {
    assert_eq!(report.is_valid(), report.errors.is_empty());
    check_order(report);
    check_size(report, input_len);
    check_round_trip(report);

    let Some(children) = canvas_children(doc) else {
        assert_eq!(
            rules(&report.errors),
            vec![RuleCode::NotACanvas],
            "a document that is not a canvas gets exactly NotACanvas"
        );
        assert!(report.warnings.is_empty(), "NotACanvas comes alone");
        return;
    };
    assert!(
        !rules(&report.errors).contains(&RuleCode::NotACanvas),
        "a canvas is never NotACanvas"
    );
    let expected = Reference::walk(children);
    expected.compare(report);
}

fn rules(findings: &[Finding]) -> Vec<RuleCode> {
    findings.iter().map(|f| f.rule).collect()
}

fn error_group(rule: RuleCode) -> usize {
    match rule {
        RuleCode::NotACanvas => 0,
        RuleCode::MissingResourceId | RuleCode::MissingStencil => 1,
        RuleCode::DuplicateElementId => 2,
        RuleCode::MissingStartEvent => 3,
        RuleCode::DanglingSequenceFlowTarget | RuleCode::SequenceFlowWithoutSource => 4,
        RuleCode::MissingEndEvent | RuleCode::DisconnectedFlowNode => {
            panic!("warning rule {rule:?} among the errors")
        }
    }
}

fn warning_group(rule: RuleCode) -> usize {
    match rule {
        RuleCode::MissingEndEvent => 0,
        RuleCode::DisconnectedFlowNode => 1,
        other => panic!("error rule {other:?} among the warnings"),
    }
}

fn check_order(report: &ValidationReport) {
    let errors: Vec<usize> = report.errors.iter().map(|f| error_group(f.rule)).collect();
    assert!(
        errors.windows(2).all(|w| w[0] <= w[1]),
        "errors out of rule order: {:?}",
        rules(&report.errors)
    );
    let warnings: Vec<usize> = report
        .warnings
        .iter()
        .map(|f| warning_group(f.rule))
        .collect();
    assert!(
        warnings.windows(2).all(|w| w[0] <= w[1]),
        "warnings out of rule order: {:?}",
        rules(&report.warnings)
    );
    for finding in report.errors.iter().chain(&report.warnings) {
        assert!(!finding.message.is_empty(), "empty message: {finding:?}");
    }
}

fn check_size(report: &ValidationReport, input_len: usize) {
    let bytes: usize = report
        .errors
        .iter()
        .chain(&report.warnings)
        .map(|f| f.message.len() + f.element_id.as_ref().map_or(0, String::len))
        .sum();
    let bound = REPORT_BYTES_PER_INPUT_BYTE * input_len + REPORT_BYTES_CONSTANT;
    assert!(
        bytes <= bound,
        "report of {bytes} bytes for {input_len} bytes of input"
    );
}

fn check_round_trip(report: &ValidationReport) {
    let json = serde_json::to_vec(report).expect("a report serialises");
    let back: ValidationReport = serde_json::from_slice(&json).expect("a report deserialises");
    assert_eq!(&back, report, "report changed in a serde round trip");
}

/// The canvas's `childShapes`, when `doc` is a `BPMNDiagram` canvas.
fn canvas_children(doc: &Value) -> Option<&Vec<Value>> {
    let is_diagram = doc
        .as_object()?
        .get("stencil")
        .and_then(|s| s.get("id"))
        .and_then(Value::as_str)
        == Some("BPMNDiagram");
    if !is_diagram {
        return None;
    }
    doc.get("childShapes")?.as_array()
}

fn non_empty(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// What the reference walk expects of the simpler rules.
#[derive(Debug, Default)]
struct Reference<'a> {
    missing_resource_id: usize,
    missing_stencil: usize,
    /// Element ids used by more than one shape, in order of first use.
    duplicated: Vec<&'a str>,
    has_process_level_start: bool,
    has_end: bool,
    dangling: usize,
    without_source: usize,
}

impl<'a> Reference<'a> {
    fn walk(children: &'a [Value]) -> Self {
        struct Seen<'a> {
            resource_id: Option<&'a str>,
            stencil: Option<&'a str>,
            outgoing: Vec<&'a str>,
            target: Option<&'a str>,
        }
        let mut out = Reference::default();
        let mut shapes: Vec<Seen<'a>> = Vec::new();
        let mut element_ids: Vec<&'a str> = Vec::new();
        // (value, process level), popped in document order.
        let mut stack: Vec<(&'a Value, bool)> = children.iter().rev().map(|c| (c, true)).collect();
        while let Some((raw, process_level)) = stack.pop() {
            let resource_id = non_empty(raw.get("resourceId"));
            let stencil = non_empty(raw.get("stencil").and_then(|s| s.get("id")));
            let override_id = non_empty(raw.get("properties").and_then(|p| p.get("overrideid")));
            if resource_id.is_none() {
                out.missing_resource_id += 1;
            }
            if stencil.is_none() {
                out.missing_stencil += 1;
            }
            element_ids.extend(override_id.or(resource_id));
            let stencil_str = stencil.unwrap_or("");
            out.has_process_level_start |= process_level && stencil_str.starts_with("Start");
            out.has_end |= stencil_str.starts_with("End");
            let outgoing = raw
                .get("outgoing")
                .and_then(Value::as_array)
                .map(|entries| {
                    entries
                        .iter()
                        .filter_map(|e| non_empty(e.get("resourceId")))
                        .collect()
                })
                .unwrap_or_default();
            let target = non_empty(raw.get("target").and_then(|t| t.get("resourceId")));
            let keeps_level = process_level && matches!(stencil, Some("Pool" | "Lane"));
            if let Some(grandchildren) = raw.get("childShapes").and_then(Value::as_array) {
                stack.extend(grandchildren.iter().rev().map(|c| (c, keeps_level)));
            }
            shapes.push(Seen {
                resource_id,
                stencil,
                outgoing,
                target,
            });
        }

        let mut counts: HashMap<&str, usize> = HashMap::new();
        for id in &element_ids {
            *counts.entry(id).or_default() += 1;
        }
        let mut reported = HashSet::new();
        for id in &element_ids {
            if counts[id] > 1 && reported.insert(*id) {
                out.duplicated.push(id);
            }
        }

        let shape_ids: HashSet<&str> = shapes.iter().filter_map(|s| s.resource_id).collect();
        let mut listed: HashSet<&str> = HashSet::new();
        for shape in &shapes {
            for &o in &shape.outgoing {
                if Some(o) != shape.resource_id {
                    listed.insert(o);
                }
            }
        }
        for shape in shapes.iter().filter(|s| s.stencil == Some("SequenceFlow")) {
            if !shape.target.is_some_and(|t| shape_ids.contains(t)) {
                out.dangling += 1;
            }
            if shape.resource_id.is_some_and(|id| !listed.contains(id)) {
                out.without_source += 1;
            }
        }
        out
    }

    fn compare(&self, report: &ValidationReport) {
        let count = |findings: &[Finding], rule: RuleCode| {
            findings.iter().filter(|f| f.rule == rule).count()
        };
        let e = &report.errors;
        let w = &report.warnings;
        assert_eq!(
            count(e, RuleCode::MissingResourceId),
            self.missing_resource_id
        );
        assert_eq!(count(e, RuleCode::MissingStencil), self.missing_stencil);
        let duplicated: Vec<&str> = e
            .iter()
            .filter(|f| f.rule == RuleCode::DuplicateElementId)
            .map(|f| {
                f.element_id
                    .as_deref()
                    .expect("a duplicate finding names its id")
            })
            .collect();
        assert_eq!(duplicated, self.duplicated, "duplicate element ids");
        assert_eq!(
            count(e, RuleCode::MissingStartEvent),
            usize::from(!self.has_process_level_start)
        );
        assert_eq!(
            count(w, RuleCode::MissingEndEvent),
            usize::from(!self.has_end)
        );
        assert_eq!(
            count(e, RuleCode::DanglingSequenceFlowTarget),
            self.dangling
        );
        assert_eq!(
            count(e, RuleCode::SequenceFlowWithoutSource),
            self.without_source
        );
    }
}
