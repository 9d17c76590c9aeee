//! The `ProcessModel` aggregate: one event stream per model.

mod commands;
mod error;
mod events;
mod rules;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use commands::{
    ChangeMetadata, CreateModel, ModelAction, ProcessModelCommand, PublishModel, RestoreModel,
};
pub use error::ProcessModelError;
pub use events::{
    DraftVersionOpened, MetadataChanged, ModelArchived, ModelCreated, ModelJsonReplaced,
    ModelPublished, ModelRestored, ProcessModelEvent,
};

use crate::values::{Category, Description, EditorJson, ModelKey, ModelName, TenantId};

/// Where a model is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ModelStatus {
    Draft,
    Published,
    Archived,
}

impl ModelStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Draft => "DRAFT",
            Self::Published => "PUBLISHED",
            Self::Archived => "ARCHIVED",
        }
    }
}

impl std::fmt::Display for ModelStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of a created model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelState {
    pub tenant_id: TenantId,
    pub key: ModelKey,
    pub name: ModelName,
    pub category: Option<Category>,
    pub description: Option<Description>,
    pub model_json: EditorJson,
    pub version: u32,
    pub status: ModelStatus,
    /// The frozen content of every published version (needed to restore one).
    pub published: BTreeMap<u32, EditorJson>,
}

/// A process model. `Default` is "not created yet": every command but create is refused on it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessModel {
    revision: u64,
    state: Option<ModelState>,
}

impl ProcessModel {
    /// The number of events applied: the stream's last sequence, used as the ETag.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// `None` until the model is created.
    pub fn state(&self) -> Option<&ModelState> {
        self.state.as_ref()
    }

    /// The state, taken (what a command's answer is built from, without copying it).
    pub fn into_state(self) -> Option<ModelState> {
        self.state
    }

    /// The state if the model exists and belongs to `tenant`.
    pub fn state_for(&self, tenant: &TenantId) -> Option<&ModelState> {
        self.state.as_ref().filter(|s| &s.tenant_id == tenant)
    }
}

impl cqrs_es::Aggregate for ProcessModel {
    const TYPE: &'static str = "ProcessModel";
    type Command = ProcessModelCommand;
    type Event = ProcessModelEvent;
    type Error = ProcessModelError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in rules::decide(self, command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.revision += 1;
        if let ProcessModelEvent::ModelCreated(created) = event {
            self.state = Some(ModelState {
                tenant_id: created.tenant_id,
                key: created.key,
                name: created.name,
                category: created.category,
                description: created.description,
                model_json: created.model_json,
                version: created.version,
                status: ModelStatus::Draft,
                published: BTreeMap::new(),
            });
            return;
        }
        // Events other than ModelCreated only ever follow it in a stream.
        let Some(state) = self.state.as_mut() else {
            return;
        };
        match event {
            ProcessModelEvent::ModelCreated(_) => {}
            ProcessModelEvent::MetadataChanged(changed) => {
                state.name = changed.name;
                state.category = changed.category;
                state.description = changed.description;
            }
            ProcessModelEvent::ModelJsonReplaced(replaced) => {
                state.model_json = replaced.model_json
            }
            ProcessModelEvent::DraftVersionOpened(opened) => {
                state.version = opened.version;
                state.status = ModelStatus::Draft;
            }
            ProcessModelEvent::ModelPublished(published) => {
                state.status = ModelStatus::Published;
                state
                    .published
                    .insert(published.version, state.model_json.clone());
            }
            ProcessModelEvent::ModelArchived(_) => state.status = ModelStatus::Archived,
            ProcessModelEvent::ModelRestored(restored) => {
                state.version = restored.version;
                state.status = ModelStatus::Draft;
                if let Some(content) = restored
                    .source_version
                    .and_then(|v| state.published.get(&v).cloned())
                {
                    state.model_json = content;
                }
            }
        }
    }
}
