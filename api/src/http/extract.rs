//! Extractors that turn request parts into typed values, rejecting bad input with our
//! problem+json errors (never axum's plain-text defaults).

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderMap};
use serde::de::DeserializeOwned;

use super::problem::ApiError;

/// A JSON body: `Content-Type: application/json` (or `+json`), within the body limit, and
/// deserialised with the failing field named.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "expected a body with Content-Type: application/json".into(),
            ));
        }
        let limit = req.extensions().get::<BodyLimit>().map(|l| l.0);
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| body_rejection(rejection, limit))?;
        parse_json(&bytes).map(ApiJson)
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The body limit in force, put into request extensions by the router so errors can name it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

fn body_rejection(rejection: BytesRejection, limit: Option<usize>) -> ApiError {
    // The only way axum fails to buffer a body below our limit layer is the limit itself
    // (or a broken connection, which nobody will read the answer to).
    match rejection {
        BytesRejection::FailedToBufferBody(inner) if inner.body_text().contains("length limit") => {
            ApiError::PayloadTooLarge {
                limit: limit.unwrap_or_default(),
            }
        }
        other => ApiError::BadRequest(other.body_text()),
    }
}

/// Deserialises `bytes`, naming the path of the first bad field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize(&mut deserializer);
    if let Ok(value) = parsed {
        // Trailing bytes after the document make it malformed.
        return deserializer
            .end()
            .map(|()| value)
            .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")));
    }
    parsed.map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data if path != "." => {
                ApiError::field(path, inner.to_string())
            }
            serde_json::error::Category::Data => {
                ApiError::BadRequest(format!("invalid body: {inner}"))
            }
            _ => ApiError::BadRequest(format!("malformed JSON: {inner}")),
        }
    })
}

/// `If-Match: "<revision>"` (or a bare number). `*` and absence mean "any revision".
pub struct IfMatch(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(Self(None));
        };
        let raw = value
            .to_str()
            .map_err(|_| ApiError::field("If-Match", "must be an ETag such as \"3\""))?
            .trim();
        if raw == "*" {
            return Ok(Self(None));
        }
        let tag = raw.strip_prefix("W/").unwrap_or(raw).trim_matches('"');
        tag.parse()
            .map(|revision| Self(Some(revision)))
            .map_err(|_| ApiError::field("If-Match", "must be an ETag such as \"3\""))
    }
}

/// Where a request came from, for event metadata and audit rows.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        // The request-id layer runs first, so the id is always there.
        let request_id = header("x-request-id").unwrap_or_default();
        let forwarded = header("x-forwarded-for")
            .and_then(|v| v.split(',').next().map(|ip| ip.trim().to_owned()))
            .filter(|ip| !ip.is_empty());
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        Ok(Self {
            request_id,
            client_ip: forwarded.or(peer),
            user_agent: header("user-agent"),
        })
    }
}

/// A JSON body that may be left out entirely: no body, or a JSON `null`, is `T::default()`.
pub struct MaybeJson<T>(pub T);

impl<S, T> FromRequest<S> for MaybeJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = req.headers();
        let declared_empty = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0");
        let untyped = !headers.contains_key(header::CONTENT_TYPE);
        if declared_empty || untyped {
            let bytes = Bytes::from_request(req, state)
                .await
                .map_err(|rejection| body_rejection(rejection, None))?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Self(T::default()));
            }
            return Err(ApiError::UnsupportedMediaType(
                "expected a body with Content-Type: application/json".into(),
            ));
        }
        ApiJson::<Option<T>>::from_request(req, state)
            .await
            .map(|ApiJson(v)| Self(v.unwrap_or_default()))
    }
}

/// The `{id}` of a model route. Anything but a UUID names no model: 404.
pub struct ModelIdPath(pub domain::ModelId);

impl<S: Send + Sync> FromRequestParts<S> for ModelIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params =
            axum::extract::Path::<std::collections::HashMap<String, String>>::from_request_parts(
                parts, state,
            )
            .await
            .map_err(|_| ApiError::NotFound("process model not found".into()))?;
        params
            .0
            .get("id")
            .and_then(|raw| uuid::Uuid::parse_str(raw).ok())
            .map(|id| Self(domain::ModelId::from_uuid(id)))
            .ok_or_else(|| ApiError::NotFound("process model not found".into()))
    }
}

/// Query parameters, with parse errors (naming the parameter) as problem+json 400s.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection| {
                let text = rejection.body_text();
                let detail = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                ApiError::BadRequest(format!("invalid query: {detail}"))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[allow(dead_code)]
        name: String,
    }

    fn field_of(error: ApiError) -> Vec<String> {
        match error {
            ApiError::Validation { errors, .. } => errors.into_keys().collect(),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn wrong_type_names_the_field() {
        let error = parse_json::<Body>(br#"{"name": 5}"#).expect_err("wrong type");
        assert_eq!(field_of(error), vec!["name"]);
    }

    #[test]
    fn unknown_field_is_refused() {
        let error = parse_json::<Body>(br#"{"name": "a", "nme": 1}"#).expect_err("unknown");
        assert!(matches!(
            error,
            ApiError::BadRequest(_) | ApiError::Validation { .. }
        ));
        assert!(error.to_string().contains("nme"), "{error}");
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        let error = parse_json::<Body>(b"{\"name\": ").expect_err("truncated");
        assert!(matches!(error, ApiError::BadRequest(_)));
        let error = parse_json::<Body>(br#"{"name": "a"} trailing"#).expect_err("trailing");
        assert!(matches!(error, ApiError::BadRequest(_)));
    }
}
