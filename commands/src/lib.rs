//! The write side: executes commands against the PostgreSQL event store (cqrs-es +
//! postgres-es in plain event-store mode), with metadata on every event, bounded retries on
//! optimistic-lock conflicts, and a `CommandRejection` record for every refused command.

pub mod db;
pub mod error;
pub mod history;
pub mod metadata;
pub mod service;
pub mod upcast;

pub use error::CommandError;
pub use history::{HistoryEvent, StorePosition};
pub use metadata::CommandMetadata;
pub use service::{CommandService, Committed, Rejection};
