//! `GET /api/v1/events/stream`: the caller's tenant's events as server-sent events. With
//! `Last-Event-ID` (header, or `lastEventId` query) the stream resumes after that global
//! position from PostgreSQL and continues live from NATS, with no gap and no duplicate.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use projections::relay::ResumeError;
use serde::Deserialize;

use super::extract::ApiQuery;
use super::openapi::responses::{
    BadRequest, Forbidden, TooManyRequests, Unauthorized, Unavailable,
};
use super::problem::ApiError;
use crate::app::AppState;
use crate::auth::{Caller, Privilege};
use crate::backend::LiveError;

/// Query parameters of `GET /api/v1/events/stream`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Only this model's events.
    pub model_id: Option<String>,
    /// Only events of this type (e.g. `ModelPublished`, `CommandRejected`).
    pub event_type: Option<String>,
    /// Resume after this global position (for clients that cannot set headers).
    pub last_event_id: Option<i64>,
}

/// Follow events (SSE)
///
/// The caller's tenant's events as server-sent events (`id`: the global position, `event`:
/// the event type, `data`: the event envelope as JSON), live and without end. Resume after a
/// position with `Last-Event-ID` (or `lastEventId`): no gap, no duplicate.
#[utoipa::path(
    get,
    path = "/api/v1/events/stream",
    tag = "events",
    security(("bearer" = ["access-modeler"])),
    params(
        StreamParams,
        ("Last-Event-ID" = Option<i64>, Header,
            description = "Resume after this global position (the last `id` received)"),
    ),
    responses(
        (status = 200, description = "An endless stream of events",
            content_type = "text/event-stream", body = String),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    )
)]
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<StreamParams>,
) -> Result<Response, ApiError> {
    caller.require(Privilege::Modeler)?;
    let last_event_id = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    ApiError::field("Last-Event-ID", "must be a global position (an integer)")
                })?,
        ),
        None => params.last_event_id,
    };
    // Held by the response stream: the slot is freed when the client goes away.
    let slot = state
        .limits
        .open_stream(&caller.tenant_id)
        .map_err(ApiError::from)?;
    let events = state
        .store
        .live_events(&caller.tenant_id, last_event_id)
        .await
        .map_err(|error| match error {
            LiveError::Resume(ResumeError::UnknownLastEventId(position)) => ApiError::field(
                "Last-Event-ID",
                format!("no stored event has global position {position}"),
            ),
            other => ApiError::Unavailable(Box::new(other)),
        })?;
    let model_id = params.model_id;
    let event_type = params.event_type;
    let sse = events
        .filter(move |item| {
            let keep = match item {
                Ok(envelope) => {
                    model_id
                        .as_ref()
                        .is_none_or(|id| &envelope.aggregate_id == id)
                        && event_type
                            .as_ref()
                            .is_none_or(|t| &envelope.event_type == t)
                }
                Err(_) => true,
            };
            std::future::ready(keep)
        })
        .map(move |item| -> Result<Event, Infallible> {
            let _slot = &slot;
            Ok(match item {
                Ok(envelope) => Event::default()
                    .id(envelope.global_position.to_string())
                    .event(envelope.event_type.clone())
                    .json_data(&envelope)
                    .unwrap_or_else(|_| {
                        Event::default().event("error").data("unserialisable event")
                    }),
                // The last item: tell the client why the stream ends (e.g. it fell too far
                // behind); it reconnects with its Last-Event-ID and catches up.
                Err(error) => Event::default().event("error").data(error.to_string()),
            })
        });
    Ok(Sse::new(sse)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
