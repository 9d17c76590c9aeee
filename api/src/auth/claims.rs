//! The claims we read from a token and the authenticated caller they describe.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};

use super::Authenticator;
use crate::http::problem::ApiError;

/// The token's claims. `sub`, `tenant_id` and `exp` are required.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub tenant_id: String,
    #[serde(default)]
    pub privileges: Vec<String>,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
}

/// `aud`: one audience or several (RFC 7519 §4.1.3; identity providers such as Keycloak
/// send an array). Which one must be present is checked by the verifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// Read and change process models.
    Modeler,
    /// The audit log and projection administration.
    Admin,
}

impl Privilege {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Modeler => "access-modeler",
            Self::Admin => "access-admin",
        }
    }
}

/// An authenticated caller. Extracting it from a request verifies the bearer token (401 when
/// missing or invalid).
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
    pub tenant_id: String,
    pub privileges: Vec<String>,
}

impl Caller {
    pub fn has(&self, privilege: Privilege) -> bool {
        self.privileges.iter().any(|p| p == privilege.as_str())
    }

    /// 403 unless the caller holds `privilege`.
    pub fn require(&self, privilege: Privilege) -> Result<(), ApiError> {
        if self.has(privilege) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                privilege: privilege.as_str(),
            })
        }
    }
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Authenticator: axum::extract::FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let authenticator = <Authenticator as axum::extract::FromRef<S>>::from_ref(state);
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized("a bearer token is required".into()))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized("expected 'Authorization: Bearer <token>'".into())
            })?;
        let claims = authenticator
            .verify(token)
            .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        let span = tracing::Span::current();
        span.record("user", claims.sub.as_str());
        span.record("tenant", claims.tenant_id.as_str());
        Ok(Self {
            user_id: claims.sub,
            tenant_id: claims.tenant_id,
            privileges: claims.privileges,
        })
    }
}
