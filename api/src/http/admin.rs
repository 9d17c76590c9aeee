//! Projection administration over HTTP (`access-admin`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::openapi::responses::{Conflict, Forbidden, NotFound, Unauthorized, Unavailable};
use super::problem::ApiError;
use super::queries::read_error;
use crate::admin::ProjectionStatus;
use crate::app::AppState;
use crate::auth::{Caller, Privilege};
use crate::backend::RebuildStart;

/// `GET /api/v1/admin/projections`
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionList {
    pub data: Vec<ProjectionStatus>,
}

/// `POST /api/v1/admin/projections/{name}/rebuild`
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RebuildStarted {
    pub name: String,
    /// Always `started`.
    pub status: String,
    /// Where the rebuild's progress shows.
    pub status_url: String,
}

/// Projection status
///
/// Every consumer of the event log (read models, audit log, relay): checkpoint, lag, runner
/// state and the latest rebuild.
#[utoipa::path(
    get,
    path = "/api/v1/admin/projections",
    tag = "admin",
    security(("bearer" = ["access-admin"])),
    responses(
        (status = 200, description = "The consumers' state", body = ProjectionList),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    )
)]
pub async fn projections(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ProjectionList>, ApiError> {
    caller.require(Privilege::Admin)?;
    let data = state.store.projections().await.map_err(read_error)?;
    Ok(Json(ProjectionList { data }))
}

/// Rebuild a read model
///
/// Starts rebuilding the read model from the whole event log in the background (reads keep
/// being served from the old tables until the new ones are swapped in); its progress shows in
/// the projection status.
#[utoipa::path(
    post,
    path = "/api/v1/admin/projections/{name}/rebuild",
    tag = "admin",
    security(("bearer" = ["access-admin"])),
    params(("name" = String, Path, description = "The read model: `process_models` or `audit_logs`")),
    responses(
        (status = 202, description = "The rebuild has started", body = RebuildStarted),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    )
)]
pub async fn rebuild(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<RebuildStarted>), ApiError> {
    caller.require(Privilege::Admin)?;
    match state.store.start_rebuild(&name) {
        RebuildStart::Started => {}
        RebuildStart::Unknown => {
            return Err(ApiError::NotFound(format!(
                "no projection named '{name}' can be rebuilt"
            )))
        }
        RebuildStart::AlreadyRunning => {
            return Err(ApiError::Conflict(format!(
                "a rebuild of {name} is already running"
            )))
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(RebuildStarted {
            name,
            status: "started".into(),
            status_url: "/api/v1/admin/projections".into(),
        }),
    ))
}
