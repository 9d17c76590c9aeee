//! What callers ask a process model to do. Every command carries the caller's tenant and,
//! optionally, the revision the caller last saw (`If-Match`).

use crate::values::{Category, Description, EditorJson, ModelKey, ModelName, TenantId};

/// A command addressed to one process model.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessModelCommand {
    /// The caller's tenant: a model of another tenant behaves as if it did not exist.
    pub tenant_id: TenantId,
    /// The revision the caller expects the model to be at; `None` = last writer wins.
    pub expected_revision: Option<u64>,
    pub action: ModelAction,
}

/// The change asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelAction {
    Create(CreateModel),
    ChangeMetadata(ChangeMetadata),
    ReplaceModelJson(EditorJson),
    Publish(PublishModel),
    Archive,
    Restore(RestoreModel),
}

impl ModelAction {
    /// A stable name for audit records and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Create(_) => "CreateModel",
            Self::ChangeMetadata(_) => "ChangeMetadata",
            Self::ReplaceModelJson(_) => "ReplaceModelJson",
            Self::Publish(_) => "PublishModel",
            Self::Archive => "ArchiveModel",
            Self::Restore(_) => "RestoreModel",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateModel {
    pub key: ModelKey,
    pub name: ModelName,
    pub category: Option<Category>,
    pub description: Option<Description>,
    /// `None` starts from an empty canvas.
    pub model_json: Option<EditorJson>,
}

/// A metadata change; `None` leaves a field as it is, `Some(None)` clears an optional one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChangeMetadata {
    pub name: Option<ModelName>,
    pub category: Option<Option<Category>>,
    pub description: Option<Option<Description>>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PublishModel {
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RestoreModel {
    /// Restore the content of this published version; `None` keeps the latest content.
    pub from_version: Option<u32>,
}
