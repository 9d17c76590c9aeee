//! What happened to a process model. Stored names are forever: never rename a variant or a
//! field; add a new event version and an upcaster instead. Each event carries what the
//! projections need, but not the editor JSON unless the event changes it (events stay small,
//! since every command re-loads the stream). Who and when live in the event metadata.

use serde::{Deserialize, Serialize};

use crate::values::{Category, Description, EditorJson, ModelKey, ModelName, TenantId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProcessModelEvent {
    ModelCreated(ModelCreated),
    MetadataChanged(MetadataChanged),
    ModelJsonReplaced(ModelJsonReplaced),
    DraftVersionOpened(DraftVersionOpened),
    ModelPublished(ModelPublished),
    ModelArchived(ModelArchived),
    ModelRestored(ModelRestored),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelCreated {
    pub tenant_id: TenantId,
    pub key: ModelKey,
    pub name: ModelName,
    pub category: Option<Category>,
    pub description: Option<Description>,
    pub model_json: EditorJson,
    pub version: u32,
}

/// The full metadata after the change (not a diff), so projections need no prior state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataChanged {
    pub name: ModelName,
    pub category: Option<Category>,
    pub description: Option<Description>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelJsonReplaced {
    pub model_json: EditorJson,
}

/// An edit of a published model: the model is a DRAFT again, at the next version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DraftVersionOpened {
    pub version: u32,
}

/// The current content is frozen as `version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelPublished {
    pub version: u32,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelArchived {
    pub version: u32,
}

/// Back to DRAFT at `version`; with `sourceVersion`, the content of that published version
/// (which the read side already holds in `model_versions`), otherwise the latest content.
///
/// Version 2.0. Version 1.0 named the source `fromVersion` (too easily read as a time
/// range); `crate::upcast` renames it when old events are read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelRestored {
    pub version: u32,
    pub source_version: Option<u32>,
}

impl cqrs_es::DomainEvent for ProcessModelEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ModelCreated(_) => "ModelCreated",
            Self::MetadataChanged(_) => "MetadataChanged",
            Self::ModelJsonReplaced(_) => "ModelJsonReplaced",
            Self::DraftVersionOpened(_) => "DraftVersionOpened",
            Self::ModelPublished(_) => "ModelPublished",
            Self::ModelArchived(_) => "ModelArchived",
            Self::ModelRestored(_) => "ModelRestored",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            Self::ModelRestored(_) => crate::upcast::MODEL_RESTORED_V2,
            _ => "1.0",
        }
        .to_owned()
    }
}
