//! Validation of Flowable editor JSON (the Oryx canvas the Flowable Modeler stores).
//!
//! Errors block publishing; warnings are reported but do not.
//!
//! Vocabulary: the document is the canvas (`stencil.id` `BPMNDiagram`); every entry of every
//! `childShapes` array below it, at any depth, is a shape. A shape's element id is its
//! `properties.overrideid` when that is a non-empty string, else its `resourceId`. References
//! (`outgoing`, `target`) name shapes by `resourceId`. An edge has no source field: its source
//! is whichever shape lists the edge's resourceId in its `outgoing`.
//!
//! Choices where the rules leave room (details next to each rule):
//! - An empty string counts as missing for `resourceId`, `stencil.id`, `overrideid` and
//!   `target.resourceId`; an entry of `childShapes` that is not an object is a shape lacking both
//!   `resourceId` and `stencil.id`; a `childShapes` or `outgoing` that is not an array is empty.
//! - Only `Pool` and `Lane` keep their children at process level for `MissingStartEvent`.
//! - A sequence flow without a resourceId gets `MissingResourceId` but not
//!   `SequenceFlowWithoutSource`; a shape listing itself in `outgoing` is not its own source.
//! - `DisconnectedFlowNode` skips event sub-processes, children of ad-hoc sub-processes and
//!   shapes without a resourceId; boundary events count only their own outgoing flows; and the
//!   compensation pair (compensation boundary event → Association → handler) counts as connected.

mod events;
mod flows;
mod json;
mod shapes;
mod structure;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

/// The rule a finding comes from; serialised as a stable kebab-case code clients can match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleCode {
    /// The document is not a `BPMNDiagram` canvas with a `childShapes` array.
    NotACanvas,
    /// A shape has no `resourceId`.
    MissingResourceId,
    /// A shape has no `stencil.id`.
    MissingStencil,
    /// Two elements share an id (`overrideid` if set, else `resourceId`).
    DuplicateElementId,
    /// No start event at process level (top, pool or lane).
    MissingStartEvent,
    /// A `SequenceFlow` has no target, or its target names no shape.
    DanglingSequenceFlowTarget,
    /// A `SequenceFlow` that no shape lists in its `outgoing`.
    SequenceFlowWithoutSource,
    /// Warning: no end event anywhere.
    MissingEndEvent,
    /// Warning: a flow node with neither incoming nor outgoing sequence flow.
    DisconnectedFlowNode,
}

/// One finding: which rule, on which element (when it is about one), and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub rule: RuleCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub element_id: Option<String>,
    pub message: String,
}

/// The outcome of validating one document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationReport {
    pub errors: Vec<Finding>,
    pub warnings: Vec<Finding>,
}

impl ValidationReport {
    /// True when there are no errors (warnings allowed).
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Validates one editor JSON document.
///
/// Accepts any JSON value and never panics. Findings come out in a fixed order: errors by rule
/// (shape fields, duplicate ids, start event, sequence flows), each rule's findings in document
/// order (a pre-order walk of `childShapes`); then warnings (end event, disconnected nodes).
/// Runs in time linear in the size of the document (hash lookups, no pairwise scans) and walks
/// the shape tree with an explicit stack, so deep nesting cannot overflow the call stack.
pub fn validate_editor_json(doc: &serde_json::Value) -> ValidationReport {
    validate(doc)
}

/// As [`validate_editor_json`], from the document's text, without decoding it into a
/// `serde_json::Value` (see the `json` module): the same report in ≈ 32 µs instead of
/// ≈ 71 µs for a 16 KB model (release build). An error when the text is not JSON.
pub fn validate_editor_json_text(text: &str) -> Result<ValidationReport, serde_json::Error> {
    let outline: json::Outline<'_> = serde_json::from_str(text)?;
    Ok(validate(&outline))
}

fn validate<J: json::Json>(doc: &J) -> ValidationReport {
    let mut report = ValidationReport::default();
    let children = match shapes::canvas_children(doc) {
        Ok(children) => children,
        Err(message) => {
            report.errors.push(Finding {
                rule: RuleCode::NotACanvas,
                element_id: None,
                message,
            });
            return report;
        }
    };
    let shapes = shapes::collect(children);
    structure::check(&shapes, &mut report.errors);
    events::check_start(&shapes, &mut report.errors);
    let index = flows::FlowIndex::build(&shapes);
    flows::check_sequence_flows(&shapes, &index, &mut report.errors);
    events::check_end(&shapes, &mut report.warnings);
    flows::check_disconnected(&shapes, &index, &mut report.warnings);
    report
}
