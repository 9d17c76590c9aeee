//! Spring Boot Actuator-shaped health endpoints: liveness says the process serves requests;
//! readiness says it can do useful work (database reachable, schema current).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::app::AppState;

pub async fn liveness() -> Json<Value> {
    Json(json!({ "status": "UP" }))
}

pub async fn readiness(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (up, details) = check_database(&state).await;
    let status = if up { "UP" } else { "DOWN" };
    let code = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({ "status": status, "components": { "db": details } })),
    )
}

pub async fn health(state: State<AppState>) -> (StatusCode, Json<Value>) {
    readiness(state).await
}

async fn check_database(state: &AppState) -> (bool, Value) {
    match commands::db::schema_status(state.commands.pool()).await {
        Ok(schema) if schema.is_current() => (true, json!({ "status": "UP" })),
        Ok(schema) => (
            false,
            json!({ "status": "DOWN", "details": { "pendingMigrations": schema.pending } }),
        ),
        Err(error) => {
            tracing::warn!(%error, "database health check failed");
            (
                false,
                json!({ "status": "DOWN", "details": { "error": "database unreachable" } }),
            )
        }
    }
}

/// The Prometheus text exposition.
pub async fn prometheus(State(state): State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match state.metrics.render() {
        Ok(body) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(error) => crate::http::problem::ApiError::internal(error).into_response(),
    }
}

/// Version, commit, build time and profile.
pub async fn info(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "app": { "name": "flowable-ui" }, "build": &*state.info }))
}
