//! What the command service needs of an event store besides cqrs-es's repository: the
//! store's own columns. One implementation per backend.

use async_trait::async_trait;

use crate::history::{HistoryEvent, StorePosition};

#[async_trait]
pub trait StoreReads: Send + Sync + 'static {
    /// The events of one stream in sequence order, with positions and times.
    async fn history(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<HistoryEvent>, sqlx::Error>;

    /// Where one event of a stream sits in the feed (for read-your-writes).
    async fn position_of(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        sequence: i64,
    ) -> Result<Option<StorePosition>, sqlx::Error>;
}
