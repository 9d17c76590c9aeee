//! Token verification and (for development) issuing.
//!
//! HS256 with `JWT_SECRET`, RS256 with a configured public key, or both. The algorithm a
//! token names picks the key, and each key only ever verifies its own algorithm, so `none`,
//! HS/RS confusion (an HS256 token "signed" with the RSA public key) and unknown algorithms
//! are refused.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};

use super::{Audience, Claims};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the token is malformed")]
    Malformed,
    #[error("tokens signed with {0:?} are not accepted")]
    AlgorithmNotAccepted(Algorithm),
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token's issuer or audience is not accepted")]
    WrongIssuerOrAudience,
    #[error("the token lacks the claim '{0}'")]
    MissingClaim(&'static str),
    #[error("the token is invalid")]
    Invalid,
    #[error("the public key could not be read: {0}")]
    Key(String),
    #[error("no signing secret is configured")]
    NoSecret,
}

/// Verifies bearer tokens. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    hs256: Option<(DecodingKey, EncodingKey)>,
    rs256: Option<DecodingKey>,
    leeway: u64,
    issuer: Option<String>,
    audience: Option<String>,
}

impl Authenticator {
    pub fn new(
        hs256_secret: Option<&[u8]>,
        rs256_public_pem: Option<&[u8]>,
        leeway: Duration,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Result<Self, AuthError> {
        let hs256 =
            hs256_secret.map(|s| (DecodingKey::from_secret(s), EncodingKey::from_secret(s)));
        let rs256 = rs256_public_pem
            .map(|pem| DecodingKey::from_rsa_pem(pem).map_err(|e| AuthError::Key(e.to_string())))
            .transpose()?;
        Ok(Self {
            inner: Arc::new(Inner {
                hs256,
                rs256,
                leeway: leeway.as_secs(),
                issuer,
                audience,
            }),
        })
    }

    /// Verifies `token` and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header = decode_header(token).map_err(|_| AuthError::Malformed)?;
        let key = match header.alg {
            Algorithm::HS256 => self.inner.hs256.as_ref().map(|(d, _)| d),
            Algorithm::RS256 => self.inner.rs256.as_ref(),
            _ => None,
        }
        .ok_or(AuthError::AlgorithmNotAccepted(header.alg))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.inner.leeway;
        validation.validate_nbf = true;
        // A configured issuer or audience must be present, not only right when present:
        // jsonwebtoken checks `iss`/`aud` only if they are among the required claims.
        let mut required = vec!["exp", "sub"];
        match &self.inner.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &self.inner.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let claims = decode::<Claims>(token, key, &validation)
            .map_err(|e| classify(e.kind()))?
            .claims;
        if claims.sub.trim().is_empty() {
            return Err(AuthError::MissingClaim("sub"));
        }
        if claims.tenant_id.trim().is_empty() {
            return Err(AuthError::MissingClaim("tenant_id"));
        }
        Ok(claims)
    }

    /// Signs an HS256 token (the `token` command and tests).
    pub fn issue(
        &self,
        sub: &str,
        tenant_id: &str,
        privileges: &[String],
        ttl: Duration,
    ) -> Result<String, AuthError> {
        let (_, key) = self.inner.hs256.as_ref().ok_or(AuthError::NoSecret)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = Claims {
            sub: sub.to_owned(),
            tenant_id: tenant_id.to_owned(),
            privileges: privileges.to_vec(),
            exp: now + ttl.as_secs(),
            iat: Some(now),
            nbf: None,
            iss: self.inner.issuer.clone(),
            aud: self.inner.audience.clone().map(Audience::One),
        };
        encode(&Header::new(Algorithm::HS256), &claims, key).map_err(|_| AuthError::Invalid)
    }
}

fn classify(kind: &jsonwebtoken::errors::ErrorKind) -> AuthError {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => AuthError::Expired,
        K::ImmatureSignature => AuthError::NotYetValid,
        K::InvalidSignature => AuthError::BadSignature,
        K::InvalidIssuer | K::InvalidAudience => AuthError::WrongIssuerOrAudience,
        K::MissingRequiredClaim(claim) if claim == "exp" => AuthError::MissingClaim("exp"),
        K::MissingRequiredClaim(claim) if claim == "iss" || claim == "aud" => {
            AuthError::WrongIssuerOrAudience
        }
        K::MissingRequiredClaim(_) => AuthError::MissingClaim("sub"),
        K::InvalidToken | K::Base64(_) | K::Json(_) | K::Utf8(_) => AuthError::Malformed,
        K::InvalidAlgorithm => AuthError::BadSignature,
        _ => AuthError::Invalid,
    }
}
