//! `GET /api/v1/audit-logs`: the caller's tenant's audit trail (`access-admin`).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use projections::audit::{self, AuditFilter, AuditResult, AuditRow};
use serde::Deserialize;

use super::dto::Page;
use super::extract::ApiQuery;
use super::problem::ApiError;
use super::queries::{read_error, MAX_PAGE_SIZE};
use crate::app::AppState;
use crate::auth::{Caller, Privilege};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditParams {
    pub user_id: Option<String>,
    pub action: Option<String>,
    pub resource_id: Option<String>,
    pub result: Option<String>,
    /// Inclusive, RFC 3339.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive, RFC 3339.
    pub to: Option<DateTime<Utc>>,
    pub start: Option<i64>,
    pub size: Option<i64>,
}

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
