//! Errors of the feed and of projectors.

use std::error::Error as StdError;
use std::fmt::Write as _;

/// Reading the event feed or a checkpoint failed.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The query against PostgreSQL failed (connection, SQL, decoding a column).
    #[error("event feed query failed")]
    Database(#[from] sqlx::Error),
    /// PostgreSQL returned an `xid8` that is not an unsigned 64-bit integer.
    #[error("transaction id {0:?} is not a 64-bit xid8")]
    InvalidTxId(String),
    /// No committed event has this global position (never written, or rolled back).
    #[error("no committed event has global position {0}")]
    UnknownEvent(i64),
}

/// A projector could not apply a batch, or the runner could not read or save its progress.
/// The runner rolls back the batch, keeps its checkpoint and retries after a back-off.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// A statement of the projection's transaction failed.
    #[error("projection database operation failed")]
    Database(#[from] sqlx::Error),
    /// Reading the feed or the checkpoint failed.
    #[error("reading the event feed failed")]
    Feed(#[from] FeedError),
    /// An event's payload or metadata is not what the projector expects.
    #[error("event {global_position} ({event_type}) could not be decoded")]
    Decode {
        global_position: i64,
        event_type: String,
        #[source]
        source: serde_json::Error,
    },
    /// The projector refused or failed to apply an event for its own reason.
    #[error("projector failed on event {global_position}")]
    Failed {
        global_position: i64,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

impl ProjectionError {
    /// Wraps a projector's own error, naming the event it failed on.
    pub fn failed(
        global_position: i64,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self::Failed {
            global_position,
            source: source.into(),
        }
    }
}

/// `error: cause: cause…`, for logs and status reports.
pub(crate) fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_lists_every_cause() {
        let error = ProjectionError::failed(7, "bad payload");
        assert_eq!(chain(&error), "projector failed on event 7: bad payload");
    }
}
