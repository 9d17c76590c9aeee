//! The write side: executes commands against the event store (the cqrs-es aggregate model
//! over our own event log, on PostgreSQL or on the embedded SQLite file), with
//! metadata on every event, bounded retries on optimistic-lock conflicts, and a
//! `CommandRejection` record for every refused command.

mod cache;
pub mod db;
pub mod error;
mod group_commit;
mod groups;
pub mod history;
pub mod metadata;
pub mod postgres;
pub mod service;
pub mod snapshot;
pub mod sqlite;
pub mod store;

pub use cache::StateCacheCounts;
pub use error::CommandError;
pub use history::{HistoryEvent, StorePosition};
pub use metadata::CommandMetadata;
pub use service::{CommandService, Commands, Committed, Rejection};
