//! Request guards applied before routing: the header-size limit, and the per-route body
//! limits (routes that carry no editor JSON accept far less than those that do).

use std::convert::Infallible;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Extension;

use super::extract::BodyLimit;
use super::problem::ApiError;

/// Refuses a request whose header fields (names, values and their separators) exceed
/// `max` bytes with 431, before any handler parses them.
pub async fn limit_headers(State(max): State<usize>, request: Request, next: Next) -> Response {
    let size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if size > max {
        return ApiError::HeaderFieldsTooLarge { limit: max }.into_response();
    }
    next.run(request).await
}

/// `route` with its own body limit (which its 413 answers name).
pub fn with_body_limit<S>(route: MethodRouter<S>, bytes: usize) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    route
        .layer::<_, Infallible>(DefaultBodyLimit::max(bytes))
        .layer::<_, Infallible>(Extension(BodyLimit(bytes)))
}
