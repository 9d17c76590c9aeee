//! The HTTP surface: routes, middleware and the error format.

pub mod admin;
pub mod audit;
pub mod dto;
pub mod extract;
mod guards;
pub mod health;
pub mod models;
pub mod openapi;
pub mod problem;
pub mod queries;
pub mod stream;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{header, HeaderName, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::app::AppState;
use crate::config::ServerSettings;
use crate::limits::LimitSettings;
use extract::BodyLimit;
use problem::ApiError;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The API's operations. Each handler's `#[utoipa::path]` gives its path and method to both
/// the router and the OpenAPI document, so neither can list a route the other lacks. Add
/// routes here and nowhere else (`tests/tests/openapi.rs` compares the served router with the
/// served document).
pub fn api_routes(limits: &LimitSettings) -> OpenApiRouter<AppState> {
    // Routes that carry editor JSON take the server's body limit; the others far less.
    let small = |(schemas, paths, route): UtoipaMethodRouter<AppState>| {
        let route = guards::with_body_limit(route, limits.small_body_limit_bytes);
        (schemas, paths, route)
    };
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(models::create, queries::list))
        .routes(routes!(models::validate))
        .routes(small(routes!(models::get, models::change_metadata)))
        .routes(routes!(models::replace_model_json))
        .routes(small(routes!(models::publish)))
        .routes(small(routes!(models::archive)))
        .routes(small(routes!(models::restore)))
        .routes(routes!(models::events))
        .routes(routes!(queries::versions))
        .routes(routes!(queries::version))
        .routes(routes!(audit::list))
        .routes(routes!(stream::stream))
        .routes(routes!(admin::projections))
        .routes(routes!(admin::rebuild))
        .routes(routes!(health::health))
        .routes(routes!(health::liveness))
        .routes(routes!(health::readiness))
        .routes(routes!(health::prometheus))
        .routes(routes!(health::info))
}

/// Every route the server answers: the API, its document and Swagger UI, and the
/// problem+json answers for unknown paths and methods. Needs no state, so tests can inspect it.
pub fn routes(limits: &LimitSettings) -> Router<AppState> {
    let (api, document) = api_routes(limits).split_for_parts();
    api.merge(openapi::docs(openapi::finish(document)))
        .fallback(|| async { ApiError::NotFound("no such resource".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
}

/// All routes with their middleware.
pub fn router(state: AppState, server: &ServerSettings, limits: &LimitSettings) -> Router {
    routes(limits)
        .route_layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::track_requests,
        ))
        .with_state(state)
        .layer(DefaultBodyLimit::max(server.body_limit_bytes))
        .layer(Extension(BodyLimit(server.body_limit_bytes)))
        .layer(axum::middleware::from_fn_with_state(
            Duration::from_secs(server.request_timeout_secs),
            time_limit,
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

/// A request that has no answer within `limit` gets a 503 problem (an SSE stream counts as
/// answered once its headers are sent).
async fn time_limit(
    State(limit): State<Duration>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::TimedOut(limit).into_response(),
    }
}
