//! Rules on every shape's own fields: `resourceId`, `stencil.id`, and unique element ids.

use std::collections::HashMap;

use super::json::Json;
use super::shapes::{describe, label, quote, Shape};
use super::{Finding, RuleCode};

/// `MissingResourceId` and `MissingStencil` per shape (in document order, resourceId first),
/// then `DuplicateElementId` once per shared id, ordered by the id's first occurrence.
pub(super) fn check<J: Json>(shapes: &[Shape<'_, J>], errors: &mut Vec<Finding>) {
    for shape in shapes {
        if !shape.raw.is_object() {
            let what = format!(
                "shape {} is {}, not a JSON object",
                label(shapes, shape),
                describe(shape.raw)
            );
            errors.push(finding(
                RuleCode::MissingResourceId,
                None,
                format!("{what}, so it has no resourceId"),
            ));
            errors.push(finding(
                RuleCode::MissingStencil,
                None,
                format!("{what}, so it has no stencil.id"),
            ));
            continue;
        }
        if shape.resource_id.is_none() {
            let found = match shape.raw.get("resourceId") {
                None => "no resourceId".to_string(),
                Some(id) if id.as_str().is_some() => "an empty resourceId".to_string(),
                Some(other) => format!("a resourceId that is {}, not a string", describe(other)),
            };
            errors.push(finding(
                RuleCode::MissingResourceId,
                shape.element_id,
                format!("shape {} has {found}", label(shapes, shape)),
            ));
        }
        if shape.stencil.is_none() {
            errors.push(finding(
                RuleCode::MissingStencil,
                shape.element_id,
                format!("shape {} has no string stencil.id", label(shapes, shape)),
            ));
        }
    }
    duplicate_ids(shapes, errors);
}

/// Element ids (overrideid, else resourceId) must be unique across all nesting levels.
/// A shape whose overrideid equals its own resourceId counts once.
fn duplicate_ids<J>(shapes: &[Shape<'_, J>], errors: &mut Vec<Finding>) {
    // id -> (order of first occurrence, number of shapes using it)
    let mut seen: HashMap<&str, (usize, usize)> = HashMap::with_capacity(shapes.len());
    for id in shapes.iter().filter_map(|s| s.element_id) {
        let next = seen.len();
        seen.entry(id).or_insert((next, 0)).1 += 1;
    }
    let mut duplicated: Vec<(usize, &str, usize)> = seen
        .into_iter()
        .filter(|(_, (_, count))| *count > 1)
        .map(|(id, (first, count))| (first, id, count))
        .collect();
    duplicated.sort_unstable();
    for (_, id, count) in duplicated {
        errors.push(finding(
            RuleCode::DuplicateElementId,
            Some(id),
            format!(
                "element id {} is used by {count} shapes; element ids must be unique",
                quote(id)
            ),
        ));
    }
}

pub(super) fn finding(rule: RuleCode, element_id: Option<&str>, message: String) -> Finding {
    Finding {
        rule,
        element_id: element_id.map(str::to_owned),
        message,
    }
}
