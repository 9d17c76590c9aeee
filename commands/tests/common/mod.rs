//! Commands the write-side tests send, with the metadata every command carries.

pub mod pg;

use commands::CommandMetadata;
use domain::process_model::{ChangeMetadata, CreateModel};
use domain::{ModelAction, ModelId, ModelKey, ModelName, ProcessModelCommand, TenantId};

pub fn metadata() -> CommandMetadata {
    CommandMetadata {
        user_id: "alice".into(),
        tenant_id: "acme".into(),
        client_ip: None,
        user_agent: None,
        correlation_id: "req".into(),
        time: chrono::Utc::now(),
    }
}

/// Renames a model of `tenant`, expecting `expected_revision` if given.
pub fn rename(
    tenant: &TenantId,
    name: &str,
    expected_revision: Option<u64>,
) -> ProcessModelCommand {
    ProcessModelCommand {
        tenant_id: tenant.clone(),
        expected_revision,
        action: ModelAction::ChangeMetadata(ChangeMetadata {
            name: Some(ModelName::parse(name).expect("name")),
            ..ChangeMetadata::default()
        }),
    }
}

/// Creates the model `key` of `tenant` (an empty canvas): its id and the command.
pub fn create(tenant: &TenantId, key: &str, name: &str) -> (ModelId, ProcessModelCommand) {
    let key = ModelKey::parse(key).expect("key");
    let id = ModelId::for_key(tenant, &key);
    let command = ProcessModelCommand {
        tenant_id: tenant.clone(),
        expected_revision: None,
        action: ModelAction::Create(CreateModel {
            key,
            name: ModelName::parse(name).expect("name"),
            category: None,
            description: None,
            model_json: None,
        }),
    };
    (id, command)
}
