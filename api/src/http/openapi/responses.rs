//! The error responses handlers list in their `responses(...)`: each one an
//! `application/problem+json` body ([`ProblemDetails`]) under a reusable name in
//! `#/components/responses`, so schemathesis checks every documented 4xx/5xx against it.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::ToSchema;

use crate::http::problem::{ProblemDetails, PROBLEM_JSON};

fn problem(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(ProblemDetails::name())))
                .build(),
        )
        .build()
}

macro_rules! problem_responses {
    ($($(#[doc = $doc:literal])+ $name:ident;)+) => {
        $(
            $(#[doc = $doc])+
            pub struct $name;

            impl<'r> utoipa::ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<Response>) {
                    (stringify!($name), problem(concat!($($doc),+).trim()).into())
                }
            }
        )+
    };
}

problem_responses! {
    /// Invalid input: a malformed body, an unknown or ill-typed field or parameter; `errors`
    /// names the fields.
    BadRequest;
    /// No bearer token, or an invalid or expired one.
    Unauthorized;
    /// The token lacks the privilege this operation needs.
    Forbidden;
    /// No such model (or one of another tenant), version or projection.
    NotFound;
    /// The model's state does not allow this (e.g. an edit of an archived model), the key is
    /// taken, or a concurrent change won: retry.
    Conflict;
    /// `If-Match` names a revision that is no longer the current one; nothing was written.
    PreconditionFailed;
    /// The body is larger than the configured limit.
    PayloadTooLarge;
    /// The body is not `application/json`.
    UnsupportedMediaType;
    /// The model does not validate: `validation` holds the findings.
    Unprocessable;
    /// The store is unreachable or the request timed out; retry later.
    Unavailable;
}

/// A rate limit (commands per client or tenant) or the cap on live streams per tenant; retry
/// after `Retry-After` seconds.
pub struct TooManyRequests;

impl<'r> utoipa::ToResponse<'r> for TooManyRequests {
    fn response() -> (&'r str, RefOr<Response>) {
        let mut response = problem(
            "A rate limit (commands per client or tenant) or the cap on live streams per \
             tenant: retry after `Retry-After` seconds.",
        );
        response.headers.insert(
            "Retry-After".into(),
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(1)),
                )
                .description(Some("Seconds to wait before retrying"))
                .build(),
        );
        ("TooManyRequests", response.into())
    }
}
