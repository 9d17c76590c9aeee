//! A structured generator of editor-JSON canvases, so that the fuzzer spends its time in the
//! rule code (nesting, references, overrideids, pools and lanes, boundary and compensation
//! events) rather than on JSON syntax errors.
//!
//! Ids come from a small pool (`sid-0` … `sid-15`), so `outgoing` and `target` references
//! often hit a real shape, a duplicate, or the shape itself; every field also has "broken"
//! forms (missing, empty, wrong JSON type, huge, arbitrary text).

use arbitrary::Arbitrary;
use serde_json::{json, Map, Value};

/// Nesting deeper than this is refused (the entry becomes a sibling instead). The API's JSON
/// parser stops at 128 levels, i.e. about 64 levels of shapes; a little more exercises the
/// validator's explicit stack without risking the recursive `Drop` of `Value`.
const MAX_DEPTH: usize = 80;

/// Stencil ids the rules care about (and a few they should ignore).
const STENCILS: &[&str] = &[
    "StartNoneEvent",
    "StartTimerEvent",
    "StartMessageEvent",
    "EndNoneEvent",
    "EndErrorEvent",
    "EndTerminateEvent",
    "UserTask",
    "ServiceTask",
    "ScriptTask",
    "ExclusiveGateway",
    "ParallelGateway",
    "SequenceFlow",
    "SequenceFlow",
    "SequenceFlow",
    "SubProcess",
    "EventSubProcess",
    "AdhocSubProcess",
    "CollapsedSubProcess",
    "CallActivity",
    "BusinessRule",
    "Pool",
    "Lane",
    "BoundaryTimerEvent",
    "BoundaryErrorEvent",
    "BoundaryCompensationEvent",
    "CatchTimerEvent",
    "ThrowNoneEvent",
    "Association",
    "Association_Undirected",
    "Association_Unidirectional",
    "TextAnnotation",
    "DataStore",
    "BPMNDiagram",
    "Start",
    "End",
];

#[derive(Arbitrary, Debug)]
pub struct CanvasSpec {
    stencil: CanvasStencil,
    children: ChildrenKind,
    with_properties: bool,
    /// The shapes in document order; each says where it goes relative to the one before, so
    /// that the generator needs no recursion (deep nesting costs no stack).
    entries: Vec<FlatEntry>,
}

#[derive(Arbitrary, Debug)]
enum CanvasStencil {
    Diagram,
    Diagram2,
    Diagram3,
    Diagram4,
    Other(String),
    NotString(i8),
    StencilNotObject,
    Missing,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum ChildrenKind {
    Array,
    Array2,
    Array3,
    NotArray(i16),
    Missing,
}

#[derive(Arbitrary, Debug)]
struct FlatEntry {
    nesting: Nesting,
    entry: Entry,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Nesting {
    /// In the same `childShapes` as the previous entry.
    Sibling,
    Sibling2,
    /// In the previous entry's `childShapes` (a sibling if it has no array of children).
    Child,
    /// Up 1 to 4 levels from the previous entry's container.
    Up(u8),
}

#[derive(Arbitrary, Debug)]
enum Entry {
    Shape(ShapeSpec),
    Shape2(ShapeSpec),
    Shape3(ShapeSpec),
    Shape4(ShapeSpec),
    Null,
    Number(i16),
    Text(IdSpec),
    EmptyArray,
}

#[derive(Arbitrary, Debug)]
struct ShapeSpec {
    resource_id: IdSpec,
    stencil: StencilSpec,
    override_id: Option<IdSpec>,
    compensation: Option<FlagSpec>,
    properties_not_object: bool,
    outgoing: RefsSpec,
    target: Option<RefSpec>,
    children: ChildrenKind,
}

#[derive(Arbitrary, Debug)]
enum IdSpec {
    Pool(u8),
    Pool2(u8),
    Pool3(u8),
    Empty,
    Missing,
    Number(i32),
    /// A long id (multi-byte characters), to exercise quoting and truncation in messages.
    Long(u8),
    Text(String),
}

#[derive(Arbitrary, Debug)]
enum StencilSpec {
    Known(u8),
    Known2(u8),
    Known3(u8),
    Known4(u8),
    Custom(String),
    Empty,
    Missing,
    NotString(bool),
    StencilNotObject,
}

#[derive(Arbitrary, Debug)]
enum RefsSpec {
    Refs(Vec<RefSpec>),
    Refs2(Vec<RefSpec>),
    Missing,
    NotArray(i8),
}

#[derive(Arbitrary, Debug)]
enum RefSpec {
    Id(u8),
    Id2(u8),
    Empty,
    NoResourceId,
    NotObject(i8),
    NumberId(i32),
    Text(String),
}

#[derive(Arbitrary, Debug)]
enum FlagSpec {
    Bool(bool),
    True,
    Upper,
    Other(String),
    Number(i8),
}

fn pool_id(n: u8) -> Value {
    Value::String(format!("sid-{}", n % 16))
}

impl IdSpec {
    /// The JSON value, or `None` for a missing field.
    fn to_json(&self) -> Option<Value> {
        Some(match self {
            IdSpec::Pool(n) | IdSpec::Pool2(n) | IdSpec::Pool3(n) => pool_id(*n),
            IdSpec::Empty => json!(""),
            IdSpec::Missing => return None,
            IdSpec::Number(n) => json!(n),
            IdSpec::Long(n) => Value::String("é".repeat(90 + usize::from(*n))),
            IdSpec::Text(s) => Value::String(s.clone()),
        })
    }
}

impl RefSpec {
    fn to_json(&self) -> Value {
        match self {
            RefSpec::Id(n) | RefSpec::Id2(n) => json!({ "resourceId": pool_id(*n) }),
            RefSpec::Empty => json!({ "resourceId": "" }),
            RefSpec::NoResourceId => json!({}),
            RefSpec::NotObject(n) => json!(n),
            RefSpec::NumberId(n) => json!({ "resourceId": n }),
            RefSpec::Text(s) => json!({ "resourceId": s }),
        }
    }
}

impl FlagSpec {
    fn to_json(&self) -> Value {
        match self {
            FlagSpec::Bool(b) => json!(b),
            FlagSpec::True => json!("true"),
            FlagSpec::Upper => json!("TRUE"),
            FlagSpec::Other(s) => json!(s),
            FlagSpec::Number(n) => json!(n),
        }
    }
}

impl ChildrenKind {
    fn is_array(self) -> bool {
        matches!(
            self,
            ChildrenKind::Array | ChildrenKind::Array2 | ChildrenKind::Array3
        )
    }

    /// The `childShapes` value for these children; `None` for a missing field.
    fn to_json(self, children: Vec<Value>) -> Option<Value> {
        match self {
            ChildrenKind::Array | ChildrenKind::Array2 | ChildrenKind::Array3 => {
                Some(Value::Array(children))
            }
            ChildrenKind::NotArray(n) => Some(json!(n)),
            ChildrenKind::Missing => None,
        }
    }
}

impl Entry {
    fn shape(&self) -> Option<&ShapeSpec> {
        match self {
            Entry::Shape(s) | Entry::Shape2(s) | Entry::Shape3(s) | Entry::Shape4(s) => Some(s),
            _ => None,
        }
    }

    /// Whether entries can nest under this one.
    fn holds_children(&self) -> bool {
        self.shape().is_some_and(|s| s.children.is_array())
    }

    fn to_json(&self, children: Vec<Value>) -> Value {
        match self {
            Entry::Shape(s) | Entry::Shape2(s) | Entry::Shape3(s) | Entry::Shape4(s) => {
                s.to_json(children)
            }
            Entry::Null => Value::Null,
            Entry::Number(n) => json!(n),
            Entry::Text(id) => id.to_json().unwrap_or(Value::Null),
            Entry::EmptyArray => json!([]),
        }
    }
}

impl CanvasSpec {
    /// The document this spec describes.
    pub fn to_json(&self) -> Value {
        let mut canvas = Map::new();
        canvas.insert("resourceId".into(), json!("canvas"));
        match &self.stencil {
            CanvasStencil::Diagram
            | CanvasStencil::Diagram2
            | CanvasStencil::Diagram3
            | CanvasStencil::Diagram4 => {
                canvas.insert("stencil".into(), json!({ "id": "BPMNDiagram" }));
            }
            CanvasStencil::Other(s) => {
                canvas.insert("stencil".into(), json!({ "id": s }));
            }
            CanvasStencil::NotString(n) => {
                canvas.insert("stencil".into(), json!({ "id": n }));
            }
            CanvasStencil::StencilNotObject => {
                canvas.insert("stencil".into(), json!("BPMNDiagram"));
            }
            CanvasStencil::Missing => {}
        }
        if self.with_properties {
            canvas.insert(
                "properties".into(),
                json!({ "process_id": "fuzz", "name": "Fuzz" }),
            );
        }
        if let Some(children) = self.children.to_json(self.tree()) {
            canvas.insert("childShapes".into(), children);
        }
        Value::Object(canvas)
    }

    /// Places the flat entries into a tree and builds it bottom-up, without recursion.
    fn tree(&self) -> Vec<Value> {
        // children[i]: indices of entry i's children; top: indices on the canvas.
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); self.entries.len()];
        let mut top: Vec<usize> = Vec::new();
        // The chain of open containers (entry indices), innermost last.
        let mut path: Vec<usize> = Vec::new();
        for (index, flat) in self.entries.iter().enumerate() {
            match flat.nesting {
                Nesting::Sibling | Nesting::Sibling2 => {}
                Nesting::Child => {
                    if index > 0
                        && self.entries[index - 1].entry.holds_children()
                        && path.len() < MAX_DEPTH
                    {
                        path.push(index - 1);
                    }
                }
                Nesting::Up(n) => {
                    let levels = usize::from(n % 4) + 1;
                    path.truncate(path.len().saturating_sub(levels));
                }
            }
            match path.last() {
                Some(&parent) => children[parent].push(index),
                None => top.push(index),
            }
        }
        // A child always comes after its parent, so building from the last entry backwards
        // finds every child already built.
        let mut built: Vec<Option<Value>> = vec![None; self.entries.len()];
        for index in (0..self.entries.len()).rev() {
            let kids = children[index]
                .iter()
                .map(|&k| built[k].take().unwrap_or(Value::Null))
                .collect();
            built[index] = Some(self.entries[index].entry.to_json(kids));
        }
        top.iter()
            .map(|&k| built[k].take().unwrap_or(Value::Null))
            .collect()
    }
}

impl ShapeSpec {
    fn to_json(&self, children: Vec<Value>) -> Value {
        let mut shape = Map::new();
        if let Some(id) = self.resource_id.to_json() {
            shape.insert("resourceId".into(), id);
        }
        let stencil = match &self.stencil {
            StencilSpec::Known(n)
            | StencilSpec::Known2(n)
            | StencilSpec::Known3(n)
            | StencilSpec::Known4(n) => {
                Some(json!({ "id": STENCILS[usize::from(*n) % STENCILS.len()] }))
            }
            StencilSpec::Custom(s) => Some(json!({ "id": s })),
            StencilSpec::Empty => Some(json!({ "id": "" })),
            StencilSpec::Missing => None,
            StencilSpec::NotString(b) => Some(json!({ "id": b })),
            StencilSpec::StencilNotObject => Some(json!("UserTask")),
        };
        if let Some(stencil) = stencil {
            shape.insert("stencil".into(), stencil);
        }
        if self.properties_not_object {
            shape.insert("properties".into(), json!("overrideid"));
        } else {
            let mut properties = Map::new();
            if let Some(id) = self.override_id.as_ref().and_then(IdSpec::to_json) {
                properties.insert("overrideid".into(), id);
            }
            if let Some(flag) = &self.compensation {
                properties.insert("isforcompensation".into(), flag.to_json());
            }
            shape.insert("properties".into(), Value::Object(properties));
        }
        match &self.outgoing {
            RefsSpec::Refs(refs) | RefsSpec::Refs2(refs) => {
                shape.insert(
                    "outgoing".into(),
                    Value::Array(refs.iter().map(RefSpec::to_json).collect()),
                );
            }
            RefsSpec::Missing => {}
            RefsSpec::NotArray(n) => {
                shape.insert("outgoing".into(), json!(n));
            }
        }
        if let Some(target) = &self.target {
            shape.insert("target".into(), target.to_json());
        }
        if let Some(children) = self.children.to_json(children) {
            shape.insert("childShapes".into(), children);
        }
        Value::Object(shape)
    }
}
