//! The HTTP surface: routes, middleware and the error format.

pub mod admin;
pub mod audit;
pub mod dto;
pub mod extract;
mod guards;
pub mod health;
pub mod models;
pub mod problem;
pub mod queries;
pub mod stream;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::app::AppState;
use crate::config::ServerSettings;
use crate::limits::LimitSettings;
use extract::BodyLimit;
use problem::ApiError;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// All routes with their middleware.
pub fn router(state: AppState, server: &ServerSettings, limits: &LimitSettings) -> Router {
    // Routes that carry editor JSON take the server's body limit; the others far less.
    let small = |route| guards::with_body_limit(route, limits.small_body_limit_bytes);
    let models = Router::new()
        .route("/", post(models::create).get(queries::list))
        .route("/validate", post(models::validate))
        .route(
            "/{id}",
            small(get(models::get).patch(models::change_metadata)),
        )
        .route("/{id}/model", put(models::replace_model_json))
        .route("/{id}/publish", small(post(models::publish)))
        .route("/{id}/archive", small(post(models::archive)))
        .route("/{id}/restore", small(post(models::restore)))
        .route("/{id}/events", get(models::events))
        .route("/{id}/versions", get(queries::versions))
        .route("/{id}/versions/{version}", get(queries::version));
    let actuator = Router::new()
        .route("/health", get(health::health))
        .route("/health/liveness", get(health::liveness))
        .route("/health/readiness", get(health::readiness))
        .route("/prometheus", get(health::prometheus))
        .route("/info", get(health::info));
    let admin = Router::new()
        .route("/projections", get(admin::projections))
        .route("/projections/{name}/rebuild", post(admin::rebuild));
    Router::new()
        .nest("/api/v1/process-models", models)
        .nest("/api/v1/admin", admin)
        .route("/api/v1/audit-logs", get(audit::list))
        .route("/api/v1/events/stream", get(stream::stream))
        .nest("/actuator", actuator)
        .fallback(|| async { ApiError::NotFound("no such resource".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .route_layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::track_requests,
        ))
        .with_state(state)
        .layer(DefaultBodyLimit::max(server.body_limit_bytes))
        .layer(Extension(BodyLimit(server.body_limit_bytes)))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(server.request_timeout_secs),
        ))
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| -> Response {
                ApiError::Internal("a request handler panicked".into()).into_response()
            },
        ))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let request_id = request
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                // user and tenant are filled in once the caller is authenticated.
                tracing::info_span!(
                    "request",
                    method = %request.method(),
                    uri = %request.uri().path(),
                    request_id,
                    user = tracing::field::Empty,
                    tenant = tracing::field::Empty,
                )
            }),
        )
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
        ]))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(axum::middleware::from_fn_with_state(
            limits.max_header_bytes,
            guards::limit_headers,
        ))
}
