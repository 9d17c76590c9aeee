//! The embedded default backend's read side on SQLite (DESIGN §7): the models and audit
//! projections applied by one in-process loop ([`SqliteProjections`]), their queries
//! ([`models`], [`audit`]), rebuilds, read-your-writes waits, status, and the in-process
//! event bus for the SSE endpoint. Types are those of the PostgreSQL read side, and the
//! fold ([`crate::models`]) and hash chain ([`crate::audit`]) code is shared with it.
//!
//! Schema: `migrations/sqlite` (0001 events, 0002 read models, 0003 audit log).

pub mod audit;
mod audit_store;
mod bus;
mod checkpoint;
mod events;
mod model_store;
pub mod models;
mod projector;
mod rebuild;
mod time;

pub use projector::{ConsumerStatus, SqliteConfig, SqliteProjections, AUDIT, MODELS};
pub use rebuild::Family;
