//! Authentication (JWT bearer tokens) and authorisation (privileges, tenants).

mod claims;
mod keys;

pub use claims::{Audience, Caller, Claims, Privilege};
pub use keys::{AuthError, Authenticator};
