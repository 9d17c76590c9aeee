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
    ChangeMetadataRequest, CreateModelRequest, EventList, ModelResponse, PublishRequest,
    RestoreRequest, ValidateResponse,
};
use super::extract::{ApiJson, IfMatch, MaybeJson, ModelIdPath, RequestContext};
use super::openapi::responses::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, PreconditionFailed,
    TooManyRequests, Unauthorized, Unavailable, Unprocessable, UnsupportedMediaType,
};
use super::problem::ApiError;
use super::queries::read_error;
use crate::app::AppState;
use crate::auth::{Caller, Privilege};
use crate::backend::ModelWait;
use projections::models::ModelRow;

/// A JSON body whose extraction error is handled by the command (so it is audited).
type Body<T> = Result<ApiJson<T>, ApiError>;

const MAX_COMMENT_CHARS: usize = 4000;

/// Create a model
///
/// A new model in `DRAFT`, version 1; without `modelJson` it gets an empty canvas.
#[utoipa::path(
    post,
    path = "/api/v1/process-models",
    tag = "process-models",
    security(("bearer" = ["access-modeler"])),
    request_body(content = CreateModelRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = ModelResponse, headers(
            ("Location" = String, description = "The new model's URL"),
            ("ETag" = String, description = "The model's revision, quoted"),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    )
)]
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

/// Change name, category or description
///
/// In `PUBLISHED` this opens the next version as `DRAFT`; an `ARCHIVED` model cannot be
/// changed (409).
#[utoipa::path(
    patch,
    path = "/api/v1/process-models/{id}",
    tag = "process-models",
    security(("bearer" = ["access-modeler"])),
    params(ModelIdParam, IfMatchParam),
    request_body(content = ChangeMetadataRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The changed model", body = ModelResponse, headers(
            ("ETag" = String, description = "The model's revision, quoted"),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    )
)]
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

/// Replace the editor JSON
///
/// The body is the whole Flowable editor JSON (a free-form object, at most 5 MiB). In
/// `PUBLISHED` this opens the next version as `DRAFT`.
#[utoipa::path(
    put,
    path = "/api/v1/process-models/{id}/model",
    tag = "process-models",
    security(("bearer" = ["access-modeler"])),
    params(ModelIdParam, IfMatchParam),
    request_body(content = Object, content_type = "application/json",
        description = "The Flowable editor JSON"),
    responses(
        (status = 200, description = "The changed model", body = ModelResponse, headers(
            ("ETag" = String, description = "The model's revision, quoted"),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    )
)]
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

/// Publish the current version
///
/// `DRAFT` only; the model must validate (422 with the findings otherwise). The version is
/// frozen and listed under `versions`. The body may be left out.
#[utoipa::path(
    post,
    path = "/api/v1/process-models/{id}/publish",
    tag = "process-models",
    security(("bearer" = ["access-modeler"])),
    params(ModelIdParam, IfMatchParam),
    request_body(content = Option<PublishRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "The published model", body = ModelResponse, headers(
            ("ETag" = String, description = "The model's revision, quoted"),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    )
)]
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

/// Archive a model
///
/// Not from `ARCHIVED` (409); an archived model refuses every edit until restored.
#[utoipa::path(
    post,
    path = "/api/v1/process-models/{id}/archive",
    tag = "process-models",
    security(("bearer" = ["access-modeler"])),
    params(ModelIdParam, IfMatchParam),
    responses(
        (status = 200, description = "The archived model", body = ModelResponse, headers(
            ("ETag" = String, description = "The model's revision, quoted"),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    )
)]
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

/// Restore a model
///
/// Back to `DRAFT` as a new version, with the content of the latest or of the given published
/// version. The body may be left out.
#[utoipa::path(
    post,
    path = "/api/v1/process-models/{id}/restore",
    tag = "process-models",
    security(("bearer" = ["access-modeler"])),
    params(ModelIdParam, IfMatchParam),
    request_body(content = Option<RestoreRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "The restored model", body = ModelResponse, headers(
            ("ETag" = String, description = "The model's revision, quoted"),
        )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    )
)]
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

/// Get a model
#[utoipa::path(
    get,
    path = "/api/v1/process-models/{id}",
    tag = "process-models",
    security(("bearer" = ["access-modeler"])),
    params(ModelIdParam),
    responses(
        (status = 200, description = "The model", body = ModelResponse, headers(
            ("ETag" = String, description = "The model's revision, quoted"),
        )),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
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

/// A model's event history
///
/// Every stored event of the model's stream, in order, with its metadata.
#[utoipa::path(
    get,
    path = "/api/v1/process-models/{id}/events",
    tag = "process-models",
    security(("bearer" = ["access-modeler"])),
    params(ModelIdParam),
    responses(
        (status = 200, description = "The model's events", body = EventList),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
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
    Ok(Json(EventList {
        total: history.len(),
        data: history,
    })
    .into_response())
}

/// Validate editor JSON
///
/// Runs the publish-time checks on a document without storing anything.
#[utoipa::path(
    post,
    path = "/api/v1/process-models/validate",
    tag = "process-models",
    security(("bearer" = ["access-modeler"])),
    request_body(content = Value, content_type = "application/json",
        description = "The Flowable editor JSON to check (any JSON: what is not a canvas gets \
            a `not-a-canvas` error)"),
    responses(
        (status = 200, description = "The findings", body = ValidateResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
    )
)]
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
    // Taken before the command runs, so the projector hands over the row it writes.
    let ticket = state.store.expect_model(id.as_uuid());
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
        Some(position) => {
            let started = std::time::Instant::now();
            let waited = state.store.wait_for_model(position, &ticket, timeout).await;
            // Timeout 0 switches the wait off: nothing to measure.
            if !timeout.is_zero() {
                let metrics = &state.metrics;
                metrics
                    .read_your_writes_wait
                    .observe(started.elapsed().as_secs_f64());
                if matches!(waited, ModelWait::TimedOut) {
                    metrics.read_your_writes_timeouts.inc();
                }
            }
            // A row older than the command's own result comes from a batch before it (the
            // batch with the command's event was applied on another replica): read instead.
            let revision = i64::try_from(committed.model.revision()).unwrap_or(i64::MAX);
            match waited {
                ModelWait::Row(row)
                    if row.tenant_id == caller.tenant_id && row.revision >= revision =>
                {
                    if let Some(row) = with_model_json(*row, committed.model, revision) {
                        return Ok(Fresh::Yes(ModelResponse::from_row(row)));
                    }
                    true
                }
                ModelWait::Row(_) | ModelWait::CaughtUp => true,
                ModelWait::TimedOut => false,
            }
        }
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

/// The handed-over `row` with its editor JSON. The projector reads and writes a row's
/// editor JSON only in a batch that changes or publishes it, so a row from a batch that did
/// not comes without; at the command's own revision it is the command's result's. `None`
/// when the row is without it and newer than the command (read the table instead). The
/// JSON is moved out of the result, not copied: it can be tens of KB.
fn with_model_json(mut row: ModelRow, model: ProcessModel, revision: i64) -> Option<ModelRow> {
    if row.model_json.is_none() {
        if row.revision != revision {
            return None;
        }
        row.model_json = Some(projections::models::json_text(
            &model.into_state()?.model_json,
        ));
    }
    Some(row)
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

/// The `{id}` path parameter of the model routes.
#[derive(utoipa::IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
#[allow(dead_code)] // only its schema is used: `ModelIdPath` extracts the id
pub(super) struct ModelIdParam(
    /// The model's id (anything but a UUID names no model: 404).
    uuid::Uuid,
);

/// The optional `If-Match` header of every mutation.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // only its schema is used: `IfMatch` reads the header
pub(super) struct IfMatchParam {
    /// The `ETag` (revision) the change is based on, e.g. `"3"`; a stale one gives 412 and
    /// nothing is written. `*` or no header: any revision.
    #[param(rename = "If-Match", value_type = String, required = false,
        pattern = r#"^\s*(\*|(W/)?"?[0-9]+"?)\s*$"#)]
    if_match: Option<String>,
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
