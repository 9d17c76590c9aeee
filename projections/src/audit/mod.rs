//! The tamper-evident audit log: the `audit_logs` projector (one row per accepted or
//! rejected command, linked into a SHA-256 hash chain per generation), the chain
//! [`verify`]er and the audit queries.

mod chain;
mod fields;
mod fill;
pub mod hash;
mod projector;
mod query;
mod rebuild;
mod row;
mod store;
mod verify;
mod verify_pg;

pub use chain::ChainError;
pub use projector::{AuditProjector, FAMILY, NAME, REBUILD_NAME};
pub use query::{list, AuditFilter, Page, MAX_PAGE_SIZE};
pub use rebuild::AuditRebuild;
pub use row::{AuditResult, AuditRow};
pub use verify::{ChainProblem, ProblemKind, VerifyReport};
pub use verify_pg::verify;

// Shared with the SQLite backend (`crate::sqlite`): the chain fold and the verify walk.
pub(crate) use chain::Chain;
pub(crate) use verify::{walk, ChainLookup};
