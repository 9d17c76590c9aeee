//! Whole-model event rules: a start event at process level, an end event somewhere.

use super::json::Json;
use super::shapes::Shape;
use super::structure::finding;
use super::{Finding, RuleCode};

/// `MissingStartEvent` (error): no shape whose stencil id starts with `Start` on the canvas
/// itself or inside a Pool or Lane at process level (Pool → Lane → nodes). Start events of
/// sub-processes and event sub-processes start those scopes, not the process, so they do not
/// count.
pub(super) fn check_start<J: Json>(shapes: &[Shape<'_, J>], errors: &mut Vec<Finding>) {
    let has_start = shapes
        .iter()
        .any(|s| s.process_level && s.stencil_starts_with("Start"));
    if !has_start {
        errors.push(finding(
            RuleCode::MissingStartEvent,
            None,
            "the process has no start event at process level (on the canvas, in a pool or in a \
             lane); start events inside sub-processes do not count"
                .into(),
        ));
    }
}

/// `MissingEndEvent` (warning): no shape whose stencil id starts with `End`, at any depth.
pub(super) fn check_end<J: Json>(shapes: &[Shape<'_, J>], warnings: &mut Vec<Finding>) {
    if !shapes.iter().any(|s| s.stencil_starts_with("End")) {
        warnings.push(finding(
            RuleCode::MissingEndEvent,
            None,
            "the model has no end event".into(),
        ));
    }
}
