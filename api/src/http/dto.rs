//! Request and response bodies of the process-model API (camelCase JSON).

use chrono::{DateTime, Utc};
use commands::HistoryEvent;
use domain::process_model::ModelState;
use domain::{ModelId, ModelStatus, ProcessModel, ProcessModelEvent, ValidationReport};
use serde::{Deserialize, Deserializer, Serialize};

/// `POST /api/v1/process-models`
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateModelRequest {
    pub key: String,
    pub name: String,
    pub category: Option<String>,
    pub description: Option<String>,
    pub model_json: Option<serde_json::Value>,
}

/// `PATCH /api/v1/process-models/{id}`: absent = unchanged, `null` = cleared.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeMetadataRequest {
    #[serde(default, deserialize_with = "present")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub category: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub description: Option<Option<String>>,
}

/// Tells a present `null` (`Some(None)`) from an absent field (`None`, via `default`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `POST .../{id}/publish`
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishRequest {
    pub comment: Option<String>,
}

/// `POST .../{id}/restore`
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreRequest {
    pub version: Option<u32>,
}

/// `POST /api/v1/process-models/validate`
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidateResponse {
    pub valid: bool,
    #[serde(flatten)]
    pub report: ValidationReport,
}

/// A process model as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelResponse {
    pub id: ModelId,
    pub key: String,
    pub name: String,
    pub category: Option<String>,
    pub description: Option<String>,
    pub version: u32,
    pub status: ModelStatus,
    pub model_json: serde_json::Value,
    pub tenant_id: String,
    pub created_by: Option<String>,
    pub created_time: DateTime<Utc>,
    pub updated_by: Option<String>,
    pub updated_time: DateTime<Utc>,
    pub revision: u64,
}

impl ModelResponse {
    /// Folds a stream's stored events into the model's current view; `None` when the
    /// stream is empty or holds an event this build cannot read.
    pub fn from_history(
        id: ModelId,
        history: &[HistoryEvent],
    ) -> Result<Option<Self>, serde_json::Error> {
        let (Some(first), Some(last)) = (history.first(), history.last()) else {
            return Ok(None);
        };
        let mut model = ProcessModel::default();
        for stored in history {
            let event: ProcessModelEvent = serde_json::from_value(stored.payload.clone())?;
            cqrs_es::Aggregate::apply(&mut model, event);
        }
        let user = |e: &HistoryEvent| {
            e.metadata
                .get(commands::metadata::keys::USER_ID)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        Ok(model.state().map(|state| {
            Self::new(
                id,
                state,
                model.revision(),
                (user(first), first.recorded_at),
                (user(last), last.recorded_at),
            )
        }))
    }

    fn new(
        id: ModelId,
        state: &ModelState,
        revision: u64,
        (created_by, created_time): (Option<String>, DateTime<Utc>),
        (updated_by, updated_time): (Option<String>, DateTime<Utc>),
    ) -> Self {
        Self {
            id,
            key: state.key.to_string(),
            name: state.name.to_string(),
            category: state.category.as_ref().map(ToString::to_string),
            description: state.description.as_ref().map(ToString::to_string),
            version: state.version,
            status: state.status,
            model_json: state.model_json.as_value().clone(),
            tenant_id: state.tenant_id.to_string(),
            created_by,
            created_time,
            updated_by,
            updated_time,
            revision,
        }
    }
}
