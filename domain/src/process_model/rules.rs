//! The decisions: given the current state and a command, which events happen (or why not).
//! Synchronous and pure, so the rules are easy to test and replay.

use super::{
    ChangeMetadata, CreateModel, DraftVersionOpened, MetadataChanged, ModelAction, ModelArchived,
    ModelCreated, ModelJsonReplaced, ModelPublished, ModelRestored, ModelState, ModelStatus,
    ProcessModel, ProcessModelCommand, ProcessModelError, ProcessModelEvent, PublishModel,
    RestoreModel,
};
use crate::values::{EditorJson, TenantId};

type Decision = Result<Vec<ProcessModelEvent>, ProcessModelError>;

pub(super) fn decide(model: &ProcessModel, command: ProcessModelCommand) -> Decision {
    let ProcessModelCommand {
        tenant_id,
        expected_revision,
        action,
    } = command;
    let name = action.name();
    let existing = || existing(model, &tenant_id, expected_revision);
    match action {
        ModelAction::Create(create) => create_model(model, tenant_id.clone(), create),
        ModelAction::ChangeMetadata(change) => change_metadata(existing()?, name, change),
        ModelAction::ReplaceModelJson(json) => replace_model_json(existing()?, name, json),
        ModelAction::Publish(publish) => publish_model(existing()?, name, publish),
        ModelAction::Archive => archive_model(existing()?, name),
        ModelAction::Restore(restore) => restore_model(existing()?, name, restore),
    }
}

/// The state of a model the caller may change: it exists in the caller's tenant, and is at
/// the revision the caller expects (if it said).
fn existing<'a>(
    model: &'a ProcessModel,
    tenant_id: &TenantId,
    expected_revision: Option<u64>,
) -> Result<&'a ModelState, ProcessModelError> {
    let state = model
        .state_for(tenant_id)
        .ok_or(ProcessModelError::NotFound)?;
    match expected_revision {
        Some(expected) if expected != model.revision() => Err(ProcessModelError::StaleRevision {
            expected,
            actual: model.revision(),
        }),
        _ => Ok(state),
    }
}

fn create_model(model: &ProcessModel, tenant_id: TenantId, create: CreateModel) -> Decision {
    if model.state().is_some() {
        return Err(ProcessModelError::KeyTaken {
            key: create.key.to_string(),
        });
    }
    let model_json = create
        .model_json
        .unwrap_or_else(|| EditorJson::empty_canvas(&create.key, &create.name));
    Ok(vec![ProcessModelEvent::ModelCreated(ModelCreated {
        tenant_id,
        key: create.key,
        name: create.name,
        category: create.category,
        description: create.description,
        model_json,
        version: 1,
    })])
}

/// An edit is refused on an archived model; on a published one it first opens the next
/// version as a draft.
fn begin_edit(state: &ModelState, action: &'static str) -> Decision {
    match state.status {
        ModelStatus::Draft => Ok(Vec::new()),
        ModelStatus::Published => Ok(vec![ProcessModelEvent::DraftVersionOpened(
            DraftVersionOpened {
                version: state.version + 1,
            },
        )]),
        ModelStatus::Archived => Err(illegal(state, action)),
    }
}

fn change_metadata(state: &ModelState, action: &'static str, change: ChangeMetadata) -> Decision {
    let changed = MetadataChanged {
        name: change.name.unwrap_or_else(|| state.name.clone()),
        category: change.category.unwrap_or_else(|| state.category.clone()),
        description: change
            .description
            .unwrap_or_else(|| state.description.clone()),
    };
    let mut events = begin_edit(state, action)?;
    if changed.name == state.name
        && changed.category == state.category
        && changed.description == state.description
    {
        // Nothing changes: no event, and no new version either.
        return Ok(Vec::new());
    }
    events.push(ProcessModelEvent::MetadataChanged(changed));
    Ok(events)
}

fn replace_model_json(state: &ModelState, action: &'static str, json: EditorJson) -> Decision {
    let mut events = begin_edit(state, action)?;
    if json == state.model_json {
        return Ok(Vec::new());
    }
    events.push(ProcessModelEvent::ModelJsonReplaced(ModelJsonReplaced {
        model_json: json,
    }));
    Ok(events)
}

fn publish_model(state: &ModelState, action: &'static str, publish: PublishModel) -> Decision {
    if state.status != ModelStatus::Draft {
        return Err(illegal(state, action));
    }
    let report = state.model_json.validate();
    if !report.is_valid() {
        return Err(ProcessModelError::InvalidModel { report });
    }
    Ok(vec![ProcessModelEvent::ModelPublished(ModelPublished {
        version: state.version,
        comment: publish.comment,
    })])
}

fn archive_model(state: &ModelState, action: &'static str) -> Decision {
    if state.status == ModelStatus::Archived {
        return Err(illegal(state, action));
    }
    Ok(vec![ProcessModelEvent::ModelArchived(ModelArchived {
        version: state.version,
    })])
}

/// Restore: from ARCHIVED or PUBLISHED, a DRAFT at the next version with the latest content
/// or that of a published version; a DRAFT can only take a published version's content
/// (it keeps its version, like any draft edit).
fn restore_model(state: &ModelState, action: &'static str, restore: RestoreModel) -> Decision {
    if let Some(version) = restore.from_version {
        if !state.published.contains_key(&version) {
            return Err(ProcessModelError::UnknownVersion { version });
        }
    }
    let version = match (state.status, restore.from_version) {
        (ModelStatus::Draft, None) => return Err(illegal(state, action)),
        (ModelStatus::Draft, Some(_)) => state.version,
        (ModelStatus::Published | ModelStatus::Archived, _) => state.version + 1,
    };
    Ok(vec![ProcessModelEvent::ModelRestored(ModelRestored {
        version,
        source_version: restore.from_version,
    })])
}

fn illegal(state: &ModelState, action: &'static str) -> ProcessModelError {
    ProcessModelError::IllegalTransition {
        action,
        status: state.status,
    }
}
