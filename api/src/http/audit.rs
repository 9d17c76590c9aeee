//! `GET /api/v1/audit-logs`: the caller's tenant's audit trail (`access-admin`).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use projections::audit::{self, AuditFilter, AuditResult, AuditRow};
use serde::Deserialize;

use super::dto::Page;
use super::extract::ApiQuery;
use super::openapi::responses::{BadRequest, Forbidden, Unauthorized, Unavailable};
use super::openapi::schemas::{AuditEntryDoc, AuditResultDoc};
use super::problem::ApiError;
use super::queries::{read_error, MAX_PAGE_SIZE};
use crate::app::AppState;
use crate::auth::{Caller, Privilege};

/// Query parameters of `GET /api/v1/audit-logs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Entries of this user.
    pub user_id: Option<String>,
    /// Entries of this command, e.g. `CreateModel`.
    pub action: Option<String>,
    /// Entries about this resource (a model id).
    pub resource_id: Option<String>,
    /// `SUCCESS` or `FAILURE`.
    #[param(value_type = Option<AuditResultDoc>)]
    pub result: Option<String>,
    /// Inclusive, RFC 3339.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive, RFC 3339; not before `from`.
    pub to: Option<DateTime<Utc>>,
    /// The first row (0-based); 0 by default.
    #[param(minimum = 0)]
    pub start: Option<i64>,
    /// Rows per page, 10 by default.
    #[param(minimum = 0, maximum = 1000)]
    pub size: Option<i64>,
}

/// Read the audit log
///
/// The caller's tenant's audit entries, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/audit-logs",
    tag = "audit",
    security(("bearer" = ["access-admin"])),
    params(AuditParams),
    responses(
        (status = 200, description = "A page of audit entries", body = Page<AuditEntryDoc>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<Page<AuditRow>>, ApiError> {
    caller.require(Privilege::Admin)?;
    let result = match params.result.as_deref() {
        None => None,
        Some("SUCCESS") => Some(AuditResult::Success),
        Some("FAILURE") => Some(AuditResult::Failure),
        Some(_) => return Err(ApiError::field("result", "must be SUCCESS or FAILURE")),
    };
    if let (Some(from), Some(to)) = (params.from, params.to) {
        if from > to {
            return Err(ApiError::field("from", "must not be after 'to'"));
        }
    }
    let start = params.start.unwrap_or(0);
    if start < 0 {
        return Err(ApiError::field("start", "must be 0 or more"));
    }
    let size = params.size.unwrap_or(10);
    if !(0..=MAX_PAGE_SIZE).contains(&size) {
        return Err(ApiError::field(
            "size",
            format!("must be between 0 and {MAX_PAGE_SIZE}"),
        ));
    }
    let filter = AuditFilter {
        user_id: params.user_id,
        action: params.action,
        resource_id: params.resource_id,
        result,
        from: params.from,
        to: params.to,
    };
    let (rows, total) = state
        .store
        .audit_logs(&caller.tenant_id, &filter, &audit::Page { start, size })
        .await
        .map_err(read_error)?;
    Ok(Json(Page {
        data: rows,
        total,
        start,
        sort: "seq".into(),
        order: "desc".into(),
        size,
    }))
}
