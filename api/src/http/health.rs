//! Spring Boot Actuator-shaped endpoints. Liveness: the process serves requests. Readiness:
//! it can do useful work — database reachable with the current schema, and the read model
//! not too far behind (NATS, once configured, only degrades: it never blocks commands).
//! `/actuator/health` shows component details to `access-admin` callers only.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::Privilege;

/// A health answer, shaped as Spring Boot Actuator's.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // only its schema is used: the handlers build the JSON
pub struct Health {
    status: HealthStatus,
    /// Per component (`db`, `projections`, `nats`): `status` and `details`.
    #[schema(value_type = Object, required = false)]
    components: Option<Value>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // only its schema is used
pub enum HealthStatus {
    #[serde(rename = "UP")]
    Up,
    #[serde(rename = "DOWN")]
    Down,
}

/// Liveness
///
/// The process serves requests.
#[utoipa::path(
    get,
    path = "/actuator/health/liveness",
    tag = "actuator",
    security(()),
    responses((status = 200, description = "Alive", body = Health)),
)]
pub async fn liveness() -> Json<Value> {
    Json(json!({ "status": "UP" }))
}

/// Readiness
///
/// The service can do useful work: the database is reachable with the current schema and the
/// read model is not too far behind (an unreachable NATS only shows as `DEGRADED`).
#[utoipa::path(
    get,
    path = "/actuator/health/readiness",
    tag = "actuator",
    security(()),
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Not ready", body = Health),
    ),
)]
pub async fn readiness(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (up, components) = check(&state).await;
    (
        code(up),
        Json(json!({ "status": status(up), "components": components })),
    )
}

/// Health
///
/// Overall health; the components are shown to callers with the `access-admin` privilege
/// only (the token is optional).
#[utoipa::path(
    get,
    path = "/actuator/health",
    tag = "actuator",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Up", body = Health),
        (status = 503, description = "Down", body = Health),
    ),
)]
pub async fn health(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    let (up, components) = check(&state).await;
    let admin = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|token| state.auth.verify(token).ok())
        .is_some_and(|claims| {
            claims
                .privileges
                .iter()
                .any(|p| p == Privilege::Admin.as_str())
        });
    let body = if admin {
        json!({ "status": status(up), "components": components })
    } else {
        json!({ "status": status(up) })
    };
    (code(up), Json(body))
}

fn status(up: bool) -> &'static str {
    if up {
        "UP"
    } else {
        "DOWN"
    }
}

fn code(up: bool) -> StatusCode {
    if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn check(state: &AppState) -> (bool, Value) {
    let (db_up, db) = check_database(state).await;
    let (lag_ok, projections) = check_projections(state).await;
    let mut components = json!({ "db": db, "projections": projections });
    // The event bus being down delays the fan-out, never the service: it shows as
    // DEGRADED without failing readiness.
    if let Some((_, bus)) = state.store.bus_health() {
        components["nats"] = bus;
    }
    (db_up && lag_ok, components)
}

async fn check_database(state: &AppState) -> (bool, Value) {
    match state.store.schema().await {
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

/// The read model must not lag more than the configured number of events.
async fn check_projections(state: &AppState) -> (bool, Value) {
    let max = state.readiness_max_lag;
    match state.store.models_lag().await {
        Ok(lag) => {
            let up = lag <= max;
            (
                up,
                json!({ "status": status(up), "details": { "lag": lag, "maxLag": max } }),
            )
        }
        Err(error) => {
            tracing::warn!(%error, "projection lag check failed");
            (
                false,
                json!({ "status": "DOWN", "details": { "error": "lag unknown" } }),
            )
        }
    }
}

/// Prometheus metrics
///
/// The OpenMetrics text exposition: HTTP, command, event-store and projection metrics.
#[utoipa::path(
    get,
    path = "/actuator/prometheus",
    tag = "actuator",
    security(()),
    responses((status = 200, description = "The metrics",
        content_type = "application/openmetrics-text", body = String)),
)]
pub async fn prometheus(State(state): State<AppState>) -> axum::response::Response {
    state.metrics.refresh(state.store.as_ref()).await;

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

/// Build information
///
/// Version, commit, build time and profile.
#[utoipa::path(
    get,
    path = "/actuator/info",
    tag = "actuator",
    security(()),
    responses((status = 200, description = "Build information", body = Object)),
)]
pub async fn info(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "app": { "name": "flowable-ui" }, "build": &*state.info }))
}
