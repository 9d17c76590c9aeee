//! The one error type of the HTTP API and its RFC 9457 `application/problem+json` form.
//! Every failure a client can see goes through here; 5xx bodies are opaque and the cause is
//! logged instead.

use std::collections::BTreeMap;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::ValidationReport;
use serde::Serialize;
use utoipa::ToSchema;

use super::openapi::schemas::ValidationReportDoc;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("this requires the '{privilege}' privilege")]
    Forbidden { privilege: &'static str },
    #[error("{0}")]
    NotFound(String),
    #[error("{detail}")]
    Validation {
        detail: String,
        errors: BTreeMap<String, Vec<String>>,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{detail}")]
    InvalidModel {
        detail: String,
        report: ValidationReport,
    },
    #[error("{0}")]
    Unprocessable(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A rate limit or concurrency cap; the client may retry after `retry_after_secs`.
    #[error("{detail}")]
    TooManyRequests {
        detail: String,
        retry_after_secs: u64,
    },
    #[error("the request's header fields exceed {limit} bytes")]
    HeaderFieldsTooLarge { limit: usize },
    #[error("the request took longer than {} s", .0.as_secs())]
    TimedOut(std::time::Duration),
    #[error("service unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// One invalid field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        Self::Validation {
            detail: format!("{field}: {message}"),
            errors: BTreeMap::from([(field, vec![message])]),
        }
    }

    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(error))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Validation { .. } | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::InvalidModel { .. } | Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::HeaderFieldsTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::TimedOut(_) | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable slug for the problem type and for audit records.
    pub fn slug(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::NotFound(_) => "not-found",
            Self::Validation { .. } => "validation",
            Self::BadRequest(_) => "bad-request",
            Self::PayloadTooLarge { .. } => "payload-too-large",
            Self::UnsupportedMediaType(_) => "unsupported-media-type",
            Self::Conflict(_) => "conflict",
            Self::PreconditionFailed(_) => "precondition-failed",
            Self::InvalidModel { .. } => "invalid-model",
            Self::Unprocessable(_) => "unprocessable",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::TooManyRequests { .. } => "too-many-requests",
            Self::HeaderFieldsTooLarge { .. } => "header-fields-too-large",
            Self::TimedOut(_) => "timeout",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

/// An RFC 9457 problem document: the body of every error response.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDetails {
    /// The kind of problem, `urn:flowable-ui:problem:<slug>` (e.g. `validation`,
    /// `not-found`, `conflict`).
    #[serde(rename = "type")]
    #[schema(example = "urn:flowable-ui:problem:validation")]
    pub kind: String,
    /// The HTTP status's reason phrase.
    pub title: String,
    /// The HTTP status code.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong, for people (opaque for 5xx).
    pub detail: String,
    /// Where input was invalid: field → messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = BTreeMap<String, Vec<String>>, required = false)]
    pub errors: Option<BTreeMap<String, Vec<String>>>,
    /// With `invalid-model` (422): the validator's findings.
    #[serde(rename = "validation", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = ValidationReportDoc, required = false)]
    pub report: Option<ValidationReport>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            Self::Unavailable(cause) | Self::Internal(cause) => {
                tracing::error!(error = %self, cause = %cause, cause_debug = ?cause, "request failed");
                status
                    .canonical_reason()
                    .unwrap_or("error")
                    .to_ascii_lowercase()
            }
            _ => self.to_string(),
        };
        let slug = self.slug();
        let retry_after_secs = match &self {
            Self::TooManyRequests {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        };
        let (errors, report) = match self {
            Self::Validation { errors, .. } => (Some(errors), None),
            Self::InvalidModel { report, .. } => (None, Some(report)),
            _ => (None, None),
        };
        let problem = ProblemDetails {
            kind: format!("urn:flowable-ui:problem:{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            errors,
            report,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<commands::CommandError> for ApiError {
    fn from(error: commands::CommandError) -> Self {
        use commands::CommandError as E;
        use domain::ProcessModelError as D;
        match error {
            E::Rejected(D::NotFound) => Self::NotFound("process model not found".into()),
            E::Rejected(e @ D::KeyTaken { .. }) => Self::Conflict(e.to_string()),
            E::Rejected(e @ D::StaleRevision { .. }) => Self::PreconditionFailed(e.to_string()),
            E::Rejected(e @ D::IllegalTransition { .. }) => Self::Conflict(e.to_string()),
            E::Rejected(e @ D::InvalidModel { .. }) => {
                let detail = e.to_string();
                match e {
                    D::InvalidModel { report } => Self::InvalidModel { detail, report },
                    _ => Self::Unprocessable(detail),
                }
            }
            E::Rejected(e @ D::UnknownVersion { .. }) => Self::field("version", e.to_string()),
            e @ E::Contention { .. } => Self::Conflict(format!("{e}; please retry")),
            E::Unavailable(cause) => Self::Unavailable(cause),
            E::Store(cause) => Self::Internal(cause),
        }
    }
}

impl From<crate::limits::Refused> for ApiError {
    fn from(refused: crate::limits::Refused) -> Self {
        // Whole seconds, rounded up: `Retry-After: 0` would invite an immediate retry.
        let retry_after_secs =
            refused.retry_after.as_secs() + u64::from(refused.retry_after.subsec_nanos() > 0);
        Self::TooManyRequests {
            detail: refused.detail,
            retry_after_secs: retry_after_secs.max(1),
        }
    }
}

impl From<domain::ValueError> for ApiError {
    fn from(error: domain::ValueError) -> Self {
        Self::field(error.field(), error.to_string())
    }
}
