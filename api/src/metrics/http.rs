//! `http_server_requests_seconds`: the Spring Boot request histogram (method, uri as the
//! route template, status, outcome), so dashboards written for Actuator work unchanged.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    method: String,
    uri: String,
    status: String,
    outcome: &'static str,
}

#[derive(Clone)]
pub(super) struct HttpMetrics {
    requests: Family<RequestLabels, Histogram>,
}

impl HttpMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
        });
        registry.register(
            "http_server_requests_seconds",
            "HTTP server request duration",
            requests.clone(),
        );
        Self { requests }
    }
}

/// Middleware: time each request and record it under its route template (`UNKNOWN` for
/// requests that matched no route, so random paths cannot blow up the label space).
pub async fn track_requests(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let uri = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "UNKNOWN".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status();
    let latency = started.elapsed();
    // The access log line: with the request span's request_id, user and tenant.
    tracing::info!(
        route = %uri,
        status = status.as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        "request completed"
    );
    let outcome = match status.as_u16() {
        100..=199 => "INFORMATIONAL",
        200..=299 => "SUCCESS",
        300..=399 => "REDIRECTION",
        400..=499 => "CLIENT_ERROR",
        500..=599 => "SERVER_ERROR",
        _ => "UNKNOWN",
    };
    metrics
        .http
        .requests
        .get_or_create(&RequestLabels {
            method,
            uri,
            status: status.as_str().to_owned(),
            outcome,
        })
        .observe(latency.as_secs_f64());
    response
}
