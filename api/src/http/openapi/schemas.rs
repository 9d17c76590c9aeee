//! Schemas for types owned by other crates. `domain` stays free of web concerns and
//! `projections`/`commands` know nothing of the API, so the shapes they serialise are described
//! here; schemathesis' response conformance check (`api-fuzz/run.sh`) catches any drift.

#![allow(dead_code)] // these types only describe JSON: they are never built

use chrono::{DateTime, Utc};
use utoipa::ToSchema;

/// Where a model is in its lifecycle.
#[derive(ToSchema)]
#[schema(as = ModelStatus, rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ModelStatusDoc {
    Draft,
    Published,
    Archived,
}

/// The validation rule a finding comes from (a stable code clients can match on).
#[derive(ToSchema)]
#[schema(as = RuleCode, rename_all = "kebab-case")]
pub enum RuleCodeDoc {
    NotACanvas,
    MissingResourceId,
    MissingStencil,
    DuplicateElementId,
    MissingStartEvent,
    DanglingSequenceFlowTarget,
    SequenceFlowWithoutSource,
    MissingEndEvent,
    DisconnectedFlowNode,
}

/// One finding: which rule, on which element (when it is about one), and a sentence for people.
#[derive(ToSchema)]
#[schema(as = Finding, rename_all = "camelCase")]
pub struct FindingDoc {
    rule: RuleCodeDoc,
    /// The element's `overrideid`, else its `resourceId`.
    #[schema(value_type = String, required = false)]
    element_id: Option<String>,
    message: String,
}

/// The validator's findings on a model that cannot be published.
#[derive(ToSchema)]
#[schema(as = ValidationReport)]
pub struct ValidationReportDoc {
    errors: Vec<FindingDoc>,
    warnings: Vec<FindingDoc>,
}

/// One stored event of a model's stream.
#[derive(ToSchema)]
#[schema(as = HistoryEvent, rename_all = "camelCase")]
pub struct HistoryEventDoc {
    /// 1, 2, 3… within the stream.
    sequence: i64,
    /// The event's place in the whole log (the SSE id).
    global_position: i64,
    /// e.g. `ModelCreated`, `ModelPublished`.
    event_type: String,
    event_version: String,
    #[schema(value_type = Object)]
    payload: serde_json::Value,
    /// Who, from where, correlation id.
    #[schema(value_type = Object)]
    metadata: serde_json::Value,
    recorded_at: DateTime<Utc>,
}

/// Whether the audited command was carried out.
#[derive(ToSchema)]
#[schema(as = AuditResult, rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuditResultDoc {
    Success,
    Failure,
}

/// One audit log entry: who did what to which resource, when, from where, with what result,
/// and its place in the tamper-evident hash chain.
#[derive(ToSchema)]
#[schema(as = AuditEntry, rename_all = "camelCase")]
pub struct AuditEntryDoc {
    id: i64,
    user_id: Option<String>,
    /// The command, e.g. `CreateModel`, `PublishModel`.
    action: String,
    /// The kind of resource, e.g. `ProcessModel`.
    resource: String,
    resource_id: Option<String>,
    ip_address: Option<String>,
    user_agent: Option<String>,
    timestamp: DateTime<Utc>,
    result: AuditResultDoc,
    /// SUCCESS: `events`, `fromSequence`, `toSequence`, and where the events carry them
    /// `version`, `key`, `comment`, `sourceVersion`. FAILURE: `reasonCode`, `reason`.
    #[schema(value_type = Object)]
    details: serde_json::Value,
    tenant_id: Option<String>,
    correlation_id: Option<String>,
    global_position: i64,
    tx_id: i64,
    /// Place in the chain: 1, 2, 3…
    seq: i64,
    prev_hash: String,
    /// Hex SHA-256 of the entry's content, `seq` and `prevHash`.
    hash: String,
}

/// A place in the event feed.
#[derive(ToSchema)]
#[schema(as = Position, rename_all = "camelCase")]
pub struct PositionDoc {
    /// The appending transaction's id.
    #[schema(minimum = 0)]
    tx_id: u64,
    global_position: i64,
}
