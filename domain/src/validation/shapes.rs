//! The canvas check and the walk that flattens the shape tree into document order.
//!
//! Every entry of every `childShapes` array, at any depth, is a shape, whatever its JSON type:
//! an entry that is not an object simply has no `resourceId` and no stencil. A `childShapes`
//! or `outgoing` value that is not an array is read as empty. Nothing here can panic.

use super::json::{Json, Kind};

/// Stencil id of a sequence flow edge.
pub(super) const SEQUENCE_FLOW: &str = "SequenceFlow";

/// The canvas's `childShapes`, or why the document is not a canvas.
pub(super) fn canvas_children<J: Json>(doc: &J) -> Result<&[J], String> {
    if !doc.is_object() {
        return Err(format!(
            "the document is {}, not a JSON object holding a BPMNDiagram canvas",
            describe(doc)
        ));
    }
    match doc
        .get("stencil")
        .and_then(|stencil| stencil.get("id"))
        .map(|id| (id, id.as_str()))
    {
        Some((_, Some("BPMNDiagram"))) => {}
        Some((_, Some(id))) => {
            return Err(format!(
                "the document's stencil.id is {}, expected 'BPMNDiagram'",
                quote(id)
            ))
        }
        _ => return Err("the document has no string stencil.id (expected 'BPMNDiagram')".into()),
    }
    match doc
        .get("childShapes")
        .map(|children| (children, children.as_array()))
    {
        Some((_, Some(children))) => Ok(children),
        Some((other, None)) => Err(format!(
            "the canvas's childShapes is {}, not an array",
            describe(other)
        )),
        None => Err("the canvas has no childShapes array".into()),
    }
}

/// "a number", "an array", ... for messages.
pub(super) fn describe(value: &impl Json) -> &'static str {
    match value.kind() {
        Kind::Null => "null",
        Kind::Bool => "a boolean",
        Kind::Number => "a number",
        Kind::String => "a string",
        Kind::Array => "an array",
        Kind::Object => "an object",
    }
}

/// A string that is present and not empty.
pub(super) fn non_empty_str<J: Json>(value: Option<&J>) -> Option<&str> {
    value.and_then(J::as_str).filter(|s| !s.is_empty())
}

/// One entry of some `childShapes` array, with what the rules need to know about it.
#[derive(Debug)]
pub(super) struct Shape<'a, J> {
    /// The entry as found (may be any JSON value).
    pub raw: &'a J,
    /// `resourceId`, when it is a non-empty string.
    pub resource_id: Option<&'a str>,
    /// `properties.overrideid` when a non-empty string, else `resource_id`.
    pub element_id: Option<&'a str>,
    /// `stencil.id`, when it is a non-empty string.
    pub stencil: Option<&'a str>,
    /// Directly on the canvas, or inside a Pool or Lane that is itself at process level.
    pub process_level: bool,
    /// Index (into the flattened list) of the shape whose `childShapes` holds this one.
    pub parent: Option<usize>,
    /// Position in that `childShapes` array.
    pub position: usize,
}

impl<'a, J: Json> Shape<'a, J> {
    fn new(raw: &'a J, parent: Option<usize>, position: usize, process_level: bool) -> Self {
        let resource_id = non_empty_str(raw.get("resourceId"));
        let override_id = non_empty_str(raw.get("properties").and_then(|p| p.get("overrideid")));
        Shape {
            raw,
            resource_id,
            element_id: override_id.or(resource_id),
            stencil: non_empty_str(raw.get("stencil").and_then(|s| s.get("id"))),
            process_level,
            parent,
            position,
        }
    }

    /// True when the stencil id is exactly `stencil`.
    pub fn is(&self, stencil: &str) -> bool {
        self.stencil == Some(stencil)
    }

    /// True when the stencil id starts with `prefix`.
    pub fn stencil_starts_with(&self, prefix: &str) -> bool {
        self.stencil.is_some_and(|s| s.starts_with(prefix))
    }

    /// The resourceIds listed in `outgoing` (entries that are not `{"resourceId": "..."}` are skipped).
    pub fn outgoing(&self) -> impl Iterator<Item = &'a str> {
        self.raw
            .get("outgoing")
            .and_then(J::as_array)
            .into_iter()
            .flatten()
            .filter_map(|entry| non_empty_str(entry.get("resourceId")))
    }

    /// `target.resourceId`, when it is a non-empty string.
    pub fn target(&self) -> Option<&'a str> {
        non_empty_str(self.raw.get("target").and_then(|t| t.get("resourceId")))
    }

    /// A property that is `true` or the string `"true"` (the editor writes both).
    pub fn flag(&self, property: &str) -> bool {
        let value = self.raw.get("properties").and_then(|p| p.get(property));
        match value.map(|v| (v.as_bool(), v.as_str())) {
            Some((Some(b), _)) => b,
            Some((_, Some(s))) => s.eq_ignore_ascii_case("true"),
            _ => false,
        }
    }
}

/// All shapes at any depth, in document order (pre-order: a shape, then its children in order).
/// Uses an explicit stack, so nesting depth is bounded only by memory.
pub(super) fn collect<J: Json>(children: &[J]) -> Vec<Shape<'_, J>> {
    let mut shapes = Vec::new();
    let mut stack: Vec<(&J, Option<usize>, usize, bool)> = children
        .iter()
        .enumerate()
        .rev()
        .map(|(position, raw)| (raw, None, position, true))
        .collect();
    while let Some((raw, parent, position, process_level)) = stack.pop() {
        let index = shapes.len();
        let shape = Shape::new(raw, parent, position, process_level);
        // Pool → Lane → nodes keeps the nodes at process level; any other container does not.
        let children_at_process_level = process_level && (shape.is("Pool") || shape.is("Lane"));
        if let Some(grandchildren) = raw.get("childShapes").and_then(J::as_array) {
            stack.extend(
                grandchildren
                    .iter()
                    .enumerate()
                    .rev()
                    .map(|(pos, child)| (child, Some(index), pos, children_at_process_level)),
            );
        }
        shapes.push(shape);
    }
    shapes
}

/// Longest id (in characters) quoted in full in a message.
const MAX_QUOTED_CHARS: usize = 100;

/// `'id'` for a message, cut short (with `…`) when very long, so that messages stay small even
/// when one huge id is mentioned by many findings (e.g. as the container of many bad shapes).
pub(super) fn quote(id: &str) -> String {
    match id.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("'{}…'", &id[..cut]),
        None => format!("'{id}'"),
    }
}

/// How to name a shape in a message: `'id'` when it has an element id, else where it sits.
pub(super) fn label<J>(shapes: &[Shape<'_, J>], shape: &Shape<'_, J>) -> String {
    if let Some(id) = shape.element_id {
        return quote(id);
    }
    let container = match shape.parent.and_then(|p| shapes.get(p)) {
        None => "the canvas".to_string(),
        Some(parent) => match parent.element_id {
            Some(id) => format!("shape {}", quote(id)),
            None => "a shape without id".to_string(),
        },
    };
    format!("at childShapes[{}] of {container}", shape.position)
}
