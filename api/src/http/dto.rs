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
    /// From the read table.
    pub fn from_row(row: projections::models::ModelRow) -> Self {
        Self {
            id: ModelId::from_uuid(row.id),
            key: row.process_key,
            name: row.name,
            category: row.category,
            description: row.description,
            version: u32::try_from(row.version).unwrap_or_default(),
            status: parse_status(&row.status),
            model_json: row.model_json,
            tenant_id: row.tenant_id,
            created_by: row.created_by,
            created_time: row.created_time,
            updated_by: row.updated_by,
            updated_time: row.updated_time,
            revision: u64::try_from(row.revision).unwrap_or_default(),
        }
    }

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

fn parse_status(raw: &str) -> ModelStatus {
    match raw {
        "PUBLISHED" => ModelStatus::Published,
        "ARCHIVED" => ModelStatus::Archived,
        _ => ModelStatus::Draft,
    }
}

/// A model in a list: everything but the editor JSON.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelSummary {
    pub id: ModelId,
    pub key: String,
    pub name: String,
    pub category: Option<String>,
    pub description: Option<String>,
    pub version: u32,
    pub status: ModelStatus,
    pub tenant_id: String,
    pub created_by: Option<String>,
    pub created_time: DateTime<Utc>,
    pub updated_by: Option<String>,
    pub updated_time: DateTime<Utc>,
    pub revision: u64,
}

impl From<projections::models::ModelRow> for ModelSummary {
    fn from(row: projections::models::ModelRow) -> Self {
        let full = ModelResponse::from_row(row);
        Self {
            id: full.id,
            key: full.key,
            name: full.name,
            category: full.category,
            description: full.description,
            version: full.version,
            status: full.status,
            tenant_id: full.tenant_id,
            created_by: full.created_by,
            created_time: full.created_time,
            updated_by: full.updated_by,
            updated_time: full.updated_time,
            revision: full.revision,
        }
    }
}

/// A page of a list: `{data, total, start, sort, order, size}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub data: Vec<T>,
    pub total: i64,
    pub start: i64,
    pub sort: String,
    pub order: String,
    pub size: i64,
}

/// A published version.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionResponse {
    pub model_id: ModelId,
    pub version: u32,
    pub key: String,
    pub name: String,
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub model_json: serde_json::Value,
    pub comment: Option<String>,
    pub published_by: Option<String>,
    pub published_time: DateTime<Utc>,
}

impl From<projections::models::VersionRow> for VersionResponse {
    fn from(row: projections::models::VersionRow) -> Self {
        Self {
            model_id: ModelId::from_uuid(row.model_id),
            version: u32::try_from(row.version).unwrap_or_default(),
            key: row.process_key,
            name: row.name,
            model_json: row.model_json,
            comment: row.comment,
            published_by: row.published_by,
            published_time: row.published_time,
        }
    }
}

/// Query parameters of `GET /api/v1/process-models`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListParams {
    pub key: Option<String>,
    pub name_like: Option<String>,
    pub category: Option<String>,
    pub status: Option<String>,
    pub created_by: Option<String>,
    pub sort: Option<String>,
    pub order: Option<String>,
    pub start: Option<i64>,
    pub size: Option<i64>,
}
