//! Sequence-flow rules: every flow has a real target and a source; flow nodes are connected.
//!
//! Edges carry no source field: a flow's source is whichever shape lists the flow's resourceId
//! in its `outgoing`. References are matched on `resourceId` (never on `overrideid`).

use std::collections::HashSet;

use super::json::Json;
use super::shapes::{label, quote, Shape, SEQUENCE_FLOW};
use super::structure::finding;
use super::{Finding, RuleCode};

/// Hash sets over all shapes, built in one pass, so each rule is a linear scan.
pub(super) struct FlowIndex<'a> {
    /// Every shape's resourceId.
    shape_ids: HashSet<&'a str>,
    /// Every resourceId some shape (other than the one named) lists in its `outgoing`.
    listed_as_outgoing: HashSet<&'a str>,
    /// ResourceIds of `SequenceFlow` shapes.
    sequence_flows: HashSet<&'a str>,
    /// ResourceIds of `Association*` shapes.
    associations: HashSet<&'a str>,
    /// `target.resourceId` of every `SequenceFlow`.
    flow_targets: HashSet<&'a str>,
    /// `target.resourceId` of every `Association*`.
    association_targets: HashSet<&'a str>,
}

impl<'a> FlowIndex<'a> {
    pub(super) fn build<J: Json>(shapes: &[Shape<'a, J>]) -> Self {
        let mut index = FlowIndex {
            shape_ids: HashSet::with_capacity(shapes.len()),
            listed_as_outgoing: HashSet::with_capacity(shapes.len()),
            sequence_flows: HashSet::new(),
            associations: HashSet::new(),
            flow_targets: HashSet::new(),
            association_targets: HashSet::new(),
        };
        for shape in shapes {
            let own = shape.resource_id;
            index.shape_ids.extend(own);
            // A shape is not its own source.
            let listed = shape.outgoing().filter(|&id| Some(id) != own);
            index.listed_as_outgoing.extend(listed);
            // An edge's target counts even when the edge itself lacks a resourceId.
            if shape.is(SEQUENCE_FLOW) {
                index.sequence_flows.extend(own);
                index.flow_targets.extend(shape.target());
            } else if is_association(shape) {
                index.associations.extend(own);
                index.association_targets.extend(shape.target());
            }
        }
        index
    }
}

fn is_association<J: Json>(shape: &Shape<'_, J>) -> bool {
    shape.stencil_starts_with("Association")
}

/// `DanglingSequenceFlowTarget` and `SequenceFlowWithoutSource`, per flow in document order.
/// A flow without a resourceId is not checked for a source: nothing can list it, and it is
/// already reported as `MissingResourceId`.
pub(super) fn check_sequence_flows<J: Json>(
    shapes: &[Shape<'_, J>],
    index: &FlowIndex<'_>,
    errors: &mut Vec<Finding>,
) {
    for shape in shapes.iter().filter(|s| s.is(SEQUENCE_FLOW)) {
        let name = label(shapes, shape);
        match shape.target() {
            None => errors.push(finding(
                RuleCode::DanglingSequenceFlowTarget,
                shape.element_id,
                format!("sequence flow {name} has no target (target.resourceId is missing)"),
            )),
            Some(target) if !index.shape_ids.contains(target) => errors.push(finding(
                RuleCode::DanglingSequenceFlowTarget,
                shape.element_id,
                format!(
                    "sequence flow {name} targets {}, which names no shape",
                    quote(target)
                ),
            )),
            Some(_) => {}
        }
        if let Some(id) = shape.resource_id {
            if !index.listed_as_outgoing.contains(id) {
                errors.push(finding(
                    RuleCode::SequenceFlowWithoutSource,
                    shape.element_id,
                    format!(
                        "sequence flow {name} has no source: no shape lists {} in its outgoing",
                        quote(id)
                    ),
                ));
            }
        }
    }
}

/// Events, tasks, gateways, sub-processes and call activities; not pools, lanes, edges,
/// annotations or data objects.
fn is_flow_node(stencil: &str) -> bool {
    const EVENT_PREFIXES: [&str; 5] = ["Start", "End", "Catch", "Throw", "Boundary"];
    EVENT_PREFIXES.iter().any(|p| stencil.starts_with(p))
        || stencil.ends_with("Task")
        || stencil.ends_with("Gateway")
        || stencil.ends_with("SubProcess")
        || matches!(stencil, "CallActivity" | "BusinessRule")
}

/// `DisconnectedFlowNode` (warning): a flow node with neither an incoming sequence flow (a
/// `SequenceFlow` whose target is its resourceId) nor an outgoing one (its `outgoing` lists a
/// `SequenceFlow`). Choices, to avoid warning on models Flowable deems correct:
/// - Boundary events: the host's `outgoing` lists them, but that is attachment, not a flow, and
///   BPMN allows them no incoming flow; only their own outgoing sequence flows count.
/// - Compensation: a `BoundaryCompensationEvent` reaches its handler through an outgoing
///   Association, and a handler (`isforcompensation` true) is reached through an incoming one;
///   BPMN forbids sequence flows on both, so for them those associations count as connections.
/// - `EventSubProcess` is started by its own start event and never has sequence flows: skipped.
/// - Direct children of an `AdhocSubProcess` need no sequence flows: skipped.
/// - Shapes without a resourceId are skipped: nothing can target them, and they are errors already.
pub(super) fn check_disconnected<J: Json>(
    shapes: &[Shape<'_, J>],
    index: &FlowIndex<'_>,
    warnings: &mut Vec<Finding>,
) {
    for shape in shapes {
        let (Some(id), Some(stencil)) = (shape.resource_id, shape.stencil) else {
            continue;
        };
        if !is_flow_node(stencil) || stencil == "EventSubProcess" || in_adhoc(shapes, shape) {
            continue;
        }
        let flow_out = shape.outgoing().any(|o| index.sequence_flows.contains(o));
        let connected = if stencil.starts_with("Boundary") {
            flow_out
                || (stencil == "BoundaryCompensationEvent"
                    && shape.outgoing().any(|o| index.associations.contains(o)))
        } else {
            flow_out
                || index.flow_targets.contains(id)
                || (shape.flag("isforcompensation") && index.association_targets.contains(id))
        };
        if !connected {
            warnings.push(finding(
                RuleCode::DisconnectedFlowNode,
                shape.element_id,
                format!(
                    "{stencil} {} has no incoming or outgoing sequence flow",
                    label(shapes, shape)
                ),
            ));
        }
    }
}

fn in_adhoc<J: Json>(shapes: &[Shape<'_, J>], shape: &Shape<'_, J>) -> bool {
    shape
        .parent
        .and_then(|p| shapes.get(p))
        .is_some_and(|parent| parent.is("AdhocSubProcess"))
}
