//! Projection administration over HTTP (`access-admin`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::problem::ApiError;
use super::queries::read_error;
use crate::app::AppState;
use crate::auth::{Caller, Privilege};
use crate::backend::RebuildStart;

/// `GET /api/v1/admin/projections`
pub async fn projections(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(Privilege::Admin)?;
    let statuses = state.store.projections().await.map_err(read_error)?;
    Ok(Json(json!({ "data": statuses })))
}

/// `POST /api/v1/admin/projections/{name}/rebuild`: starts a rebuild in the background
/// (202); its progress shows in the status list.
pub async fn rebuild(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
        Json(
            json!({ "name": name, "status": "started", "statusUrl": "/api/v1/admin/projections" }),
        ),
    ))
}
