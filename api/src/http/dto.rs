//! Request and response bodies of the process-model API (camelCase JSON).

use chrono::{DateTime, Utc};
use commands::HistoryEvent;
use domain::process_model::ModelState;
use domain::{ModelId, ModelStatus, ProcessModel, ProcessModelEvent, ValidationReport};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

use super::openapi::schemas::{FindingDoc, HistoryEventDoc, ModelStatusDoc};

/// `POST /api/v1/process-models`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateModelRequest {
    /// The process key: an XML NCName (a letter or `_`, then letters, digits, `_`, `-`,
    /// `.`), unique in the tenant. Letters beyond ASCII are accepted too; the pattern shows
    /// the ASCII form.
    #[schema(
        min_length = 1,
        max_length = 50,
        pattern = "^[A-Za-z_][A-Za-z0-9_.-]*$",
        example = "invoiceApproval"
    )]
    pub key: String,
    /// Not blank; surrounding white space is trimmed.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "\\S",
        example = "Invoice approval"
    )]
    pub name: String,
    /// Blank means none.
    #[schema(max_length = 50)]
    pub category: Option<String>,
    /// Blank means none.
    #[schema(max_length = 4000)]
    pub description: Option<String>,
    /// The Flowable editor JSON (a free-form object, at most 5 MiB); an empty canvas when
    /// left out.
    #[schema(value_type = Option<Object>)]
    pub model_json: Option<serde_json::Value>,
}

/// `PATCH /api/v1/process-models/{id}`: absent = unchanged, `null` = cleared. At least
/// one field must be given.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeMetadataRequest {
    /// The new name (it cannot be cleared).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, min_length = 1, max_length = 100)]
    pub name: Option<Option<String>>,
    /// The new category; `null` or blank clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 50)]
    pub category: Option<Option<String>>,
    /// The new description; `null` or blank clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 4000)]
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

/// `POST .../{id}/publish` (the body may be left out).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishRequest {
    /// Kept with the published version; trimmed, at most 4000 characters.
    #[schema(max_length = 4000)]
    pub comment: Option<String>,
}

/// `POST .../{id}/restore` (the body may be left out).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreRequest {
    /// The published version whose content to restore; the latest content when left out.
    #[schema(minimum = 0, maximum = 4294967295_u64)]
    pub version: Option<u32>,
}

/// `POST /api/v1/process-models/validate`
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidateResponse {
    /// True when there are no errors (warnings allowed).
    pub valid: bool,
    #[serde(flatten)]
    #[schema(value_type = ValidationFindings)]
    pub report: ValidationReport,
}

/// Errors (which block publishing) and warnings (which do not), in a fixed order.
#[derive(ToSchema)]
#[allow(dead_code)] // only its schema is used: the report itself comes from `domain`
pub struct ValidationFindings {
    errors: Vec<FindingDoc>,
    warnings: Vec<FindingDoc>,
}

/// A process model as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelResponse {
    #[schema(value_type = uuid::Uuid)]
    pub id: ModelId,
    pub key: String,
    pub name: String,
    pub category: Option<String>,
    pub description: Option<String>,
    pub version: u32,
    #[schema(value_type = ModelStatusDoc)]
    pub status: ModelStatus,
    /// The Flowable editor JSON.
    #[schema(value_type = Object)]
    pub model_json: Box<RawValue>,
    pub tenant_id: String,
    pub created_by: Option<String>,
    pub created_time: DateTime<Utc>,
    pub updated_by: Option<String>,
    pub updated_time: DateTime<Utc>,
    /// The stream's revision, also the `ETag`.
    pub revision: u64,
}

impl ModelResponse {
    /// From the read table: a row read with its editor JSON, as a single-model read gives
    /// it (a row without shows `null`; [`ModelSummary`] drops it anyway).
    pub fn from_row(row: projections::models::ModelRow) -> Self {
        Self {
            id: ModelId::from_uuid(row.id),
            key: row.process_key,
            name: row.name,
            category: row.category,
            description: row.description,
            version: u32::try_from(row.version).unwrap_or_default(),
            status: parse_status(&row.status),
            model_json: row
                .model_json
                .map_or_else(|| RawValue::NULL.to_owned(), |json| json.0),
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
            model_json: state.model_json.as_raw().to_owned(),
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
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelSummary {
    #[schema(value_type = uuid::Uuid)]
    pub id: ModelId,
    pub key: String,
    pub name: String,
    pub category: Option<String>,
    pub description: Option<String>,
    pub version: u32,
    #[schema(value_type = ModelStatusDoc)]
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
#[derive(Debug, Serialize, ToSchema)]
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
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionResponse {
    #[schema(value_type = uuid::Uuid)]
    pub model_id: ModelId,
    pub version: u32,
    pub key: String,
    pub name: String,
    /// The editor JSON as published (left out of a list of versions).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub model_json: Option<Box<RawValue>>,
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
            model_json: row
                .model_json
                .map(|json| json.0)
                .filter(|json| json.get() != "null"),
            comment: row.comment,
            published_by: row.published_by,
            published_time: row.published_time,
        }
    }
}

/// Query parameters of `GET /api/v1/process-models`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Exactly this key.
    pub key: Option<String>,
    /// Names containing this text (case-insensitive).
    pub name_like: Option<String>,
    /// Exactly this category.
    pub category: Option<String>,
    /// `DRAFT`, `PUBLISHED` or `ARCHIVED`.
    #[param(value_type = Option<ModelStatusDoc>)]
    pub status: Option<String>,
    /// Models created by this user id.
    pub created_by: Option<String>,
    /// `name` (default), `key`, `createdTime`, `updatedTime` or `version`.
    #[param(value_type = Option<SortParam>, inline)]
    pub sort: Option<String>,
    /// `asc` (default) or `desc`.
    #[param(value_type = Option<OrderParam>, inline)]
    pub order: Option<String>,
    /// The first row (0-based); 0 by default.
    #[param(minimum = 0)]
    pub start: Option<i64>,
    /// Rows per page, 10 by default.
    #[param(minimum = 0, maximum = 1000)]
    pub size: Option<i64>,
}

/// What a list can be sorted by.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)] // only its schema is used: the handler parses the text itself
pub enum SortParam {
    Name,
    Key,
    CreatedTime,
    UpdatedTime,
    Version,
}

/// Sort direction.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // only its schema is used
pub enum OrderParam {
    Asc,
    Desc,
}

/// `GET .../{id}/versions`: every published version, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionList {
    pub data: Vec<VersionResponse>,
    pub total: usize,
}

/// `GET .../{id}/events`: the model's stored events, in stream order.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    #[schema(value_type = Vec<HistoryEventDoc>)]
    pub data: Vec<HistoryEvent>,
    pub total: usize,
}
