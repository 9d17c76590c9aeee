//! Why a command did not go through.

use cqrs_es::AggregateError;
use domain::ProcessModelError;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The domain refused the command.
    #[error(transparent)]
    Rejected(#[from] ProcessModelError),
    /// Other writers kept winning the race for the stream; the caller may retry.
    #[error("the model was changed concurrently {attempts} times in a row")]
    Contention { attempts: u32 },
    /// The database could not be reached.
    #[error("the event store is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Anything else: a bug or a corrupt store.
    #[error("the event store failed")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl CommandError {
    pub(crate) fn from_aggregate<E>(error: AggregateError<E>) -> Result<Self, Conflict>
    where
        E: std::error::Error + Into<CommandError>,
    {
        match error {
            AggregateError::UserError(e) => Ok(e.into()),
            AggregateError::AggregateConflict => Err(Conflict),
            AggregateError::DatabaseConnectionError(e) => Ok(Self::Unavailable(e)),
            AggregateError::DeserializationError(e) | AggregateError::UnexpectedError(e) => {
                Ok(Self::Store(e))
            }
        }
    }
}

/// An optimistic-lock conflict: another writer appended to the stream first.
#[derive(Debug)]
pub(crate) struct Conflict;

impl From<sqlx::Error> for CommandError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed => Self::Unavailable(Box::new(error)),
            // SQLite's writer lock was not granted within the busy timeout (SQLITE_BUSY,
            // SQLITE_LOCKED and their extended codes): the store is busy, not broken.
            sqlx::Error::Database(ref db)
                if matches!(db.code().as_deref(), Some("5" | "6" | "517" | "262")) =>
            {
                Self::Unavailable(Box::new(error))
            }
            other => Self::Store(Box::new(other)),
        }
    }
}

impl From<domain::RejectionError> for CommandError {
    fn from(error: domain::RejectionError) -> Self {
        Self::Store(Box::new(error))
    }
}
