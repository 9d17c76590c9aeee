//! The process-model routes: commands (create, edit, publish, archive, restore), reads of
//! one model and its history, and stand-alone validation.

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use commands::{CommandMetadata, Rejection};
use domain::process_model::{ChangeMetadata, CreateModel, PublishModel, RestoreModel};
use domain::{
    validate_editor_json, Category, Description, EditorJson, ModelAction, ModelId, ModelKey,
    ModelName, ProcessModel, ProcessModelCommand, TenantId,
};

use super::dto::{
    ChangeMetadataRequest, CreateModelRequest, ModelResponse, PublishRequest, RestoreRequest,
    ValidateResponse,
};
use super::extract::{ApiJson, IfMatch, MaybeJson, ModelIdPath, RequestContext};
use super::problem::ApiError;
use super::queries::read_error;
use crate::app::AppState;
use crate::auth::{Caller, Privilege};

/// A JSON body whose extraction error is handled by the command (so it is audited).
type Body<T> = Result<ApiJson<T>, ApiError>;

const MAX_COMMENT_CHARS: usize = 4000;

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ctx: RequestContext,
    body: Body<CreateModelRequest>,
) -> Result<Response, ApiError> {
    let mut resource = None;
    let result = async {
        caller.require(Privilege::Modeler)?;
        let ApiJson(body) = body?;
        let key = ModelKey::parse(&body.key)?;
        let tenant = TenantId::new(caller.tenant_id.clone());
        let id = ModelId::for_key(&tenant, &key);
        resource = Some(id);
        let create = CreateModel {
            key,
            name: ModelName::parse(&body.name)?,
            category: body
                .category
                .as_deref()
                .map(Category::parse)
                .transpose()?
                .flatten(),
            description: body
                .description
                .as_deref()
                .map(Description::parse)
                .transpose()?
                .flatten(),
            model_json: body.model_json.map(EditorJson::parse).transpose()?,
        };
        execute(&state, &caller, &ctx, id, None, ModelAction::Create(create)).await
    }
    .await;
    let response = audited(&state, &caller, &ctx, "CreateModel", resource, result).await?;
    let location = format!("/api/v1/process-models/{}", response.id());
    let mut response = model_response(StatusCode::CREATED, response);
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

pub async fn change_metadata(
    State(state): State<AppState>,
    caller: Caller,
    ctx: RequestContext,
    ModelIdPath(id): ModelIdPath,
    IfMatch(expected): IfMatch,
    body: Body<ChangeMetadataRequest>,
) -> Result<Response, ApiError> {
    let result = async {
        caller.require(Privilege::Modeler)?;
        let ApiJson(body) = body?;
        let change = ChangeMetadata {
            name: match body.name {
                Some(Some(name)) => Some(ModelName::parse(&name)?),
                Some(None) => return Err(ApiError::field("name", "name cannot be removed")),
                None => None,
            },
            category: body
                .category
                .map(|c| {
                    c.as_deref()
                        .map(Category::parse)
                        .transpose()
                        .map(Option::flatten)
                })
                .transpose()?,
            description: body
                .description
                .map(|d| {
                    d.as_deref()
                        .map(Description::parse)
                        .transpose()
                        .map(Option::flatten)
                })
                .transpose()?,
        };
        if change == ChangeMetadata::default() {
            return Err(ApiError::BadRequest(
                "nothing to change: give at least one of name, category, description".into(),
            ));
        }
        execute(
            &state,
            &caller,
            &ctx,
            id,
            expected,
            ModelAction::ChangeMetadata(change),
        )
        .await
    }
    .await;
    respond(&state, &caller, &ctx, "ChangeMetadata", id, result).await
}

pub async fn replace_model_json(
    State(state): State<AppState>,
    caller: Caller,
    ctx: RequestContext,
    ModelIdPath(id): ModelIdPath,
    IfMatch(expected): IfMatch,
    body: Body<serde_json::Value>,
) -> Result<Response, ApiError> {
    let result = async {
        caller.require(Privilege::Modeler)?;
        let ApiJson(json) = body?;
        let json = EditorJson::parse(json)?;
        execute(
            &state,
            &caller,
            &ctx,
            id,
            expected,
            ModelAction::ReplaceModelJson(json),
        )
        .await
    }
    .await;
    respond(&state, &caller, &ctx, "ReplaceModelJson", id, result).await
}

pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    ctx: RequestContext,
    ModelIdPath(id): ModelIdPath,
    IfMatch(expected): IfMatch,
    body: Result<MaybeJson<PublishRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let result = async {
        caller.require(Privilege::Modeler)?;
        let MaybeJson(body) = body?;
        let comment = body
            .comment
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty());
        if comment.as_ref().is_some_and(|c| c.contains('\0')) {
            // PostgreSQL cannot store U+0000.
            return Err(ApiError::field(
                "comment",
                "comment must not contain U+0000",
            ));
        }
        if comment
            .as_ref()
            .is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS)
        {
            return Err(ApiError::field(
                "comment",
                format!("comment must be at most {MAX_COMMENT_CHARS} characters"),
            ));
        }
        execute(
            &state,
            &caller,
            &ctx,
            id,
            expected,
            ModelAction::Publish(PublishModel { comment }),
        )
        .await
    }
    .await;
    respond(&state, &caller, &ctx, "PublishModel", id, result).await
}

pub async fn archive(
    State(state): State<AppState>,
    caller: Caller,
    ctx: RequestContext,
    ModelIdPath(id): ModelIdPath,
    IfMatch(expected): IfMatch,
) -> Result<Response, ApiError> {
    let result = async {
        caller.require(Privilege::Modeler)?;
        execute(&state, &caller, &ctx, id, expected, ModelAction::Archive).await
    }
    .await;
    respond(&state, &caller, &ctx, "ArchiveModel", id, result).await
}

pub async fn restore(
    State(state): State<AppState>,
    caller: Caller,
    ctx: RequestContext,
    ModelIdPath(id): ModelIdPath,
    IfMatch(expected): IfMatch,
    body: Result<MaybeJson<RestoreRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let result = async {
        caller.require(Privilege::Modeler)?;
        let MaybeJson(body) = body?;
        let action = ModelAction::Restore(RestoreModel {
            from_version: body.version,
        });
        execute(&state, &caller, &ctx, id, expected, action).await
    }
    .await;
    respond(&state, &caller, &ctx, "RestoreModel", id, result).await
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ModelIdPath(id): ModelIdPath,
) -> Result<Response, ApiError> {
    caller.require(Privilege::Modeler)?;
    let row = state
        .store
        .model(&caller.tenant_id, id.as_uuid())
        .await
        .map_err(read_error)?
        .ok_or_else(not_found)?;
    Ok(model_response(
        StatusCode::OK,
        Fresh::Yes(ModelResponse::from_row(row)),
    ))
}

pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    ModelIdPath(id): ModelIdPath,
) -> Result<Response, ApiError> {
    caller.require(Privilege::Modeler)?;
    let history = state.commands.history(id).await?;
    // Only the owner tenant may see a stream; others get the same 404 as for a missing one.
    let owned = ModelResponse::from_history(id, &history)
        .map_err(ApiError::internal)?
        .is_some_and(|view| view.tenant_id == caller.tenant_id);
    if !owned {
        return Err(not_found());
    }
    Ok(Json(serde_json::json!({ "data": history, "total": history.len() })).into_response())
}

pub async fn validate(
    caller: Caller,
    body: ApiJson<serde_json::Value>,
) -> Result<Json<ValidateResponse>, ApiError> {
    caller.require(Privilege::Modeler)?;
    let ApiJson(doc) = body;
    let report = validate_editor_json(&doc);
    Ok(Json(ValidateResponse {
        valid: report.is_valid(),
        report,
    }))
}

async fn execute(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestContext,
    id: ModelId,
    expected_revision: Option<u64>,
    action: ModelAction,
) -> Result<Fresh<ModelResponse>, ApiError> {
    state
        .limits
        .check_command(&caller.tenant_id, &caller.user_id)
        .map_err(ApiError::from)?;
    let command = ProcessModelCommand {
        tenant_id: TenantId::new(caller.tenant_id.clone()),
        expected_revision,
        action,
    };
    let committed = state
        .commands
        .execute(id, command, &metadata(caller, ctx))
        .await?;
    state
        .metrics
        .eventstore_appends
        .inc_by(committed.events.len() as u64);
    // Read-your-writes: answer once the read table has the change, so a GET right after
    // this response shows it. A command that wrote nothing waits for the model's earlier
    // events instead.
    let timeout = state.read_your_writes_timeout;
    let caught_up = match committed.position {
        Some(position) => state.store.wait_for_models(position, timeout).await,
        None => state.store.wait_for_stream(&id.to_string(), timeout).await,
    };
    if caught_up {
        if let Some(row) = state
            .store
            .model(&caller.tenant_id, id.as_uuid())
            .await
            .map_err(read_error)?
        {
            return Ok(Fresh::Yes(ModelResponse::from_row(row)));
        }
    }
    // The projection is behind: answer from the event store, and say so.
    load_view(state, caller, id).await.map(Fresh::Stale)
}

/// A command's answer, and whether the read tables already include it.
enum Fresh<T> {
    Yes(T),
    Stale(T),
}

async fn load_view(
    state: &AppState,
    caller: &Caller,
    id: ModelId,
) -> Result<ModelResponse, ApiError> {
    let history = state.commands.history(id).await?;
    ModelResponse::from_history(id, &history)
        .map_err(ApiError::internal)?
        .filter(|view| view.tenant_id == caller.tenant_id)
        .ok_or_else(not_found)
}

fn not_found() -> ApiError {
    ApiError::NotFound("process model not found".into())
}

fn metadata(caller: &Caller, ctx: &RequestContext) -> CommandMetadata {
    CommandMetadata {
        user_id: caller.user_id.clone(),
        tenant_id: caller.tenant_id.clone(),
        client_ip: ctx.client_ip.clone(),
        user_agent: ctx.user_agent.clone(),
        correlation_id: ctx.request_id.clone(),
        time: Utc::now(),
    }
}

async fn respond(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestContext,
    command: &'static str,
    id: ModelId,
    result: Result<Fresh<ModelResponse>, ApiError>,
) -> Result<Response, ApiError> {
    let view = audited(state, caller, ctx, command, Some(id), result).await?;
    Ok(model_response(StatusCode::OK, view))
}

/// Passes `result` through; a refused command is first recorded in the event store as a
/// `CommandRejected` record for the audit log. Server-side failures are not rejections.
async fn audited<T>(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestContext,
    command: &'static str,
    resource: Option<ModelId>,
    result: Result<T, ApiError>,
) -> Result<T, ApiError> {
    let Err(error) = result else {
        return result;
    };
    if error.status().is_client_error() {
        state
            .metrics
            .commands_rejected
            .get_or_create(&crate::metrics::RejectionLabels {
                reason: error.slug().to_owned(),
            })
            .inc();
        // A flood of bad or throttled requests must not fill the event store: throttled
        // commands are never recorded, other refusals up to a per-client rate.
        if matches!(error, ApiError::TooManyRequests { .. })
            || !state
                .limits
                .record_rejection(&caller.tenant_id, &caller.user_id)
        {
            state.metrics.commands_rejected_unrecorded.inc();
            return Err(error);
        }
        let rejection = Rejection {
            tenant_id: Some(caller.tenant_id.clone()),
            command: command.to_owned(),
            resource_type: <ProcessModel as cqrs_es::Aggregate>::TYPE.to_owned(),
            resource_id: resource.map(|id| id.to_string()),
            reason_code: error.slug().to_owned(),
            // Messages can echo the input (an unknown field's name): bounded, and without
            // U+0000, which PostgreSQL cannot store.
            reason: error
                .to_string()
                .replace('\0', "\u{FFFD}")
                .chars()
                .take(1000)
                .collect(),
        };
        if let Err(record_error) = state
            .commands
            .record_rejection(rejection, &metadata(caller, ctx))
            .await
        {
            // The caller still gets the real answer; the missing audit row is an operational
            // fault, logged with everything needed to reconstruct it.
            tracing::error!(error = %record_error, command, reason = error.slug(), user = %caller.user_id,
                "could not record a rejected command");
        }
    }
    Err(error)
}

fn model_response(status: StatusCode, view: Fresh<ModelResponse>) -> Response {
    let (view, fresh) = match view {
        Fresh::Yes(view) => (view, true),
        Fresh::Stale(view) => (view, false),
    };
    let etag = format!("\"{}\"", view.revision);
    let mut response = (status, Json(view)).into_response();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    if !fresh {
        response.headers_mut().insert(
            HeaderName::from_static("x-read-your-writes"),
            HeaderValue::from_static("timeout"),
        );
    }
    response
}

impl Fresh<ModelResponse> {
    fn id(&self) -> ModelId {
        match self {
            Self::Yes(view) | Self::Stale(view) => view.id,
        }
    }
}
