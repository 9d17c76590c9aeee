//! Reads served from the projections: lists of models and their published versions.

use axum::extract::{Path, State};
use axum::Json;
use projections::models::query::{ListPage, ModelFilter, SortColumn};

use super::dto::{ListParams, ModelSummary, Page, VersionList, VersionResponse};
use super::extract::{ApiQuery, ModelIdPath};
use super::models::ModelIdParam;
use super::openapi::responses::{BadRequest, Forbidden, NotFound, Unauthorized, Unavailable};
use super::problem::ApiError;
use crate::app::AppState;
use crate::auth::{Caller, Privilege};

pub const MAX_PAGE_SIZE: i64 = 1000;
const DEFAULT_PAGE_SIZE: i64 = 10;

/// List models
///
/// The caller's tenant's models, filtered, sorted and paged (without their editor JSON).
#[utoipa::path(
    get,
    path = "/api/v1/process-models",
    tag = "process-models",
    security(("bearer" = ["access-modeler"])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of models", body = Page<ModelSummary>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Page<ModelSummary>>, ApiError> {
    caller.require(Privilege::Modeler)?;
    let sort_name = params.sort.unwrap_or_else(|| "name".into());
    let sort = match sort_name.as_str() {
        "name" => SortColumn::Name,
        "key" => SortColumn::Key,
        "createdTime" => SortColumn::CreatedTime,
        "updatedTime" => SortColumn::UpdatedTime,
        "version" => SortColumn::Version,
        _ => {
            return Err(ApiError::field(
                "sort",
                "must be one of name, key, createdTime, updatedTime, version",
            ))
        }
    };
    let order = params.order.unwrap_or_else(|| "asc".into());
    let descending = match order.as_str() {
        "asc" => false,
        "desc" => true,
        _ => return Err(ApiError::field("order", "must be asc or desc")),
    };
    let start = params.start.unwrap_or(0);
    if start < 0 {
        return Err(ApiError::field("start", "must be 0 or more"));
    }
    let size = params.size.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(0..=MAX_PAGE_SIZE).contains(&size) {
        return Err(ApiError::field(
            "size",
            format!("must be between 0 and {MAX_PAGE_SIZE}"),
        ));
    }
    if let Some(status) = &params.status {
        if !matches!(status.as_str(), "DRAFT" | "PUBLISHED" | "ARCHIVED") {
            return Err(ApiError::field(
                "status",
                "must be DRAFT, PUBLISHED or ARCHIVED",
            ));
        }
    }
    let filter = ModelFilter {
        key: params.key,
        name_like: params.name_like,
        category: params.category,
        status: params.status,
        created_by: params.created_by,
    };
    let page = ListPage {
        sort,
        descending,
        start,
        size,
    };
    let (rows, total) = state
        .store
        .models(&caller.tenant_id, &filter, page)
        .await
        .map_err(read_error)?;
    Ok(Json(Page {
        data: rows.into_iter().map(ModelSummary::from).collect(),
        total,
        start,
        sort: sort_name,
        order,
        size,
    }))
}

/// A model's published versions
///
/// Every published version (immutable), by version number.
#[utoipa::path(
    get,
    path = "/api/v1/process-models/{id}/versions",
    tag = "process-models",
    security(("bearer" = ["access-modeler"])),
    params(ModelIdParam),
    responses(
        (status = 200, description = "The published versions", body = VersionList),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn versions(
    State(state): State<AppState>,
    caller: Caller,
    ModelIdPath(id): ModelIdPath,
) -> Result<Json<VersionList>, ApiError> {
    caller.require(Privilege::Modeler)?;
    // A model of another tenant is as absent as a missing one.
    if state
        .store
        .model(&caller.tenant_id, id.as_uuid())
        .await
        .map_err(read_error)?
        .is_none()
    {
        return Err(ApiError::NotFound("process model not found".into()));
    }
    let versions: Vec<VersionResponse> = state
        .store
        .versions(&caller.tenant_id, id.as_uuid())
        .await
        .map_err(read_error)?
        .into_iter()
        .map(VersionResponse::from)
        .collect();
    Ok(Json(VersionList {
        total: versions.len(),
        data: versions,
    }))
}

/// One published version
#[utoipa::path(
    get,
    path = "/api/v1/process-models/{id}/versions/{version}",
    tag = "process-models",
    security(("bearer" = ["access-modeler"])),
    params(
        ModelIdParam,
        ("version" = i32, Path, description = "The version number (anything else: 404)"),
    ),
    responses(
        (status = 200, description = "The version", body = VersionResponse),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn version(
    State(state): State<AppState>,
    caller: Caller,
    ModelIdPath(id): ModelIdPath,
    Path(segments): Path<(String, String)>,
) -> Result<Json<VersionResponse>, ApiError> {
    let (_, version) = segments;
    caller.require(Privilege::Modeler)?;
    let not_found =
        || ApiError::NotFound(format!("version {version} of this model is not published"));
    let number: i32 = version.parse().map_err(|_| not_found())?;
    state
        .store
        .version(&caller.tenant_id, id.as_uuid(), number)
        .await
        .map_err(read_error)?
        .map(|row| Json(VersionResponse::from(row)))
        .ok_or_else(not_found)
}

pub(super) fn read_error(error: sqlx::Error) -> ApiError {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => ApiError::Unavailable(Box::new(error)),
        other => ApiError::internal(other),
    }
}
