//! The OpenAPI 3.1 document. Each handler carries its `#[utoipa::path]` (path, method,
//! parameters, bodies, responses, the privilege it needs); `super::api_routes` registers the
//! handlers through utoipa-axum, so the router and the document come from the same
//! declarations. Served at `GET /api-docs/openapi.json`, with Swagger UI at `GET /docs` (its
//! assets are embedded in the binary: nothing is fetched at build or run time).

pub mod responses;
pub mod schemas;

use axum::Router;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::problem::ProblemDetails;
use responses::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, PreconditionFailed,
    TooManyRequests, Unauthorized, Unavailable, Unprocessable, UnsupportedMediaType,
};

/// Where the document is served (no authentication).
pub const SPEC_PATH: &str = "/api-docs/openapi.json";
/// Where Swagger UI is served (no authentication).
pub const DOCS_PATH: &str = "/docs";
/// The name of the bearer JWT security scheme that handlers' `security(...)` refer to.
pub const BEARER: &str = "bearer";
/// The operation extension naming the privilege an operation needs.
pub const PRIVILEGE_EXTENSION: &str = "x-required-privilege";

/// What the document holds besides the operations (added by the router).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "flowable-ui",
        description = "Process models (Flowable editor JSON) with an event-sourced history: \
            create, edit, validate, publish, version, archive and restore them; read the audit \
            log; follow the event stream; administer the read models.\n\n\
            Authentication: `Authorization: Bearer <JWT>` (claims `sub`, `tenant_id`, \
            `privileges`, `exp`). Each operation names the privilege it needs \
            (`x-required-privilege`): `access-modeler` to read and change models, \
            `access-admin` for the audit log and projection administration. A model of another \
            tenant is answered like a missing one (404).\n\n\
            Errors are RFC 9457 `application/problem+json` documents. Every mutation takes an \
            optional `If-Match` (the `ETag`, the model's revision): a stale one gives 412 and \
            writes nothing. Commands are rate-limited per client and per tenant (429 with \
            `Retry-After`); request header fields above the configured size give 431.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    tags(
        (name = "process-models", description = "Commands and queries on process models"),
        (name = "audit", description = "The tamper-evident audit log"),
        (name = "events", description = "Live events (server-sent events)"),
        (name = "admin", description = "Read-model (projection) administration"),
        (name = "actuator", description = "Health, metrics and build information"),
    ),
    components(
        schemas(ProblemDetails),
        responses(
            BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed,
            PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable
        )
    ),
    modifiers(&BearerScheme),
)]
pub struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "HS256 (or RS256) JWT with `sub`, `tenant_id`, `privileges` and `exp`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The whole document, as served.
pub fn document() -> Document {
    let limits = crate::limits::LimitSettings::default();
    let (_, document) = super::api_routes(&limits).split_for_parts();
    finish(document)
}

/// Completes the router's document: each operation's privilege, which its `security`
/// requirement names as the bearer scheme's role (OpenAPI 3.1 allows roles for any scheme),
/// is also given as the `x-required-privilege` extension and in its description.
pub(super) fn finish(mut document: Document) -> Document {
    for item in document.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            let privileges: Vec<String> = operation
                .security
                .iter()
                .flatten()
                .filter_map(|requirement| serde_json::to_value(requirement).ok())
                .filter_map(|value| {
                    value
                        .get(BEARER)
                        .and_then(|roles| serde_json::from_value::<Vec<String>>(roles.clone()).ok())
                })
                .flatten()
                .collect();
            let Some(privilege) = privileges.first() else {
                continue;
            };
            let note = format!("Requires the `{privilege}` privilege.");
            operation.description = Some(match operation.description.take() {
                Some(text) if !text.is_empty() => format!("{text}\n\n{note}"),
                _ => note,
            });
            let extension = ExtensionsBuilder::new()
                .add(PRIVILEGE_EXTENSION, privilege.as_str())
                .build();
            match &mut operation.extensions {
                Some(extensions) => extensions.merge(extension),
                None => operation.extensions = Some(extension),
            }
        }
    }
    document
}

/// `GET /api-docs/openapi.json` and Swagger UI under `GET /docs`.
pub(super) fn docs<S: Clone + Send + Sync + 'static>(document: Document) -> Router<S> {
    SwaggerUi::new(DOCS_PATH).url(SPEC_PATH, document).into()
}
