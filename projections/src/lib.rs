//! Everything that consumes the event log: the gap-safe [`Feed`], checkpoints, and the
//! [`ProjectorRunner`] that applies a [`Projector`] to the feed exactly once, on one replica
//! at a time.

pub mod audit;
pub mod checkpoint;
mod error;
mod event;
pub mod event_counts;
mod event_metadata;
pub mod feed;
pub mod generation;
mod listener;
pub mod models;
mod position;
pub mod rebuild;
pub mod relay;
pub mod runner;
pub mod sqlite;
mod stored_json;
pub mod upcast;

pub use checkpoint::Checkpoint;
pub use error::{FeedError, ProjectionError};
pub use event::StoredEvent;
pub use feed::{Feed, Head};
pub use listener::{Wake, EVENTS_CHANNEL};
pub use position::Position;
pub use runner::{
    advisory_lock_key, LiveOutcome, Projector, ProjectorHandle, ProjectorRunner, RunnerConfig,
    RunnerState, RunnerStatus, DEFAULT_BATCH_BYTES,
};
pub use stored_json::StoredJson;
