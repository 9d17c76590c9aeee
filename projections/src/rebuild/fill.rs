//! The fill of a rebuild: the feed read ahead on a connection of its own, and each batch
//! handed to the read model's [`Fill`], which writes it into the new generation.

use std::time::Instant;

use async_trait::async_trait;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

use super::{RebuildError, REBUILD_BATCH_BYTES};
use crate::event::StoredEvent;
use crate::feed;
use crate::position::Position;

/// How many connections a read model's own [`Fill`] may write on at once: one writing
/// backend was the bound, with a third of the two cores idle (docs/performance.md).
pub(crate) const FILL_WRITERS: u64 = 2;

/// `rows` cut into parts of at most `part_len` (at least 1), in order; none is empty.
pub(crate) fn in_parts<T>(rows: Vec<T>, part_len: usize) -> Vec<Vec<T>> {
    let part_len = part_len.max(1);
    let mut parts = Vec::with_capacity(rows.len().div_ceil(part_len));
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        parts.push(rows.by_ref().take(part_len).collect());
    }
    parts
}

/// Reads the feed from position 0 into `batches` until it has passed `head` (the last
/// event committed when the rebuild started), or until the xmin gate has held it back for
/// 30 s (what it holds back then follows in the swap). Stops early when the writer is gone.
pub(super) async fn read_ahead(
    connect: PgConnectOptions,
    head: Option<Position>,
    batch_size: i64,
    batches: tokio::sync::mpsc::Sender<Vec<StoredEvent>>,
) -> Result<(), RebuildError> {
    let Some(head) = head else {
        return Ok(());
    };
    // Its own connection, so a small pool cannot starve the writer.
    let mut conn = PgConnection::connect_with(&connect).await?;
    let mut after = Position::START;
    let gate_deadline = Instant::now() + std::time::Duration::from_secs(30);
    while after < head {
        let batch =
            feed::read_batch_within(&mut conn, after, batch_size, REBUILD_BATCH_BYTES).await?;
        let Some(last) = batch.last().map(StoredEvent::position) else {
            if Instant::now() >= gate_deadline {
                tracing::warn!(?head, "rebuild: events before the start are still held back by an open transaction; they follow with the live projector");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        };
        after = last;
        if batches.send(batch).await.is_err() {
            break;
        }
    }
    let _ = conn.close().await;
    Ok(())
}

/// How a rebuild writes the feed into the new generation: batch after batch, in feed order.
/// Its transactions need not wait for the WAL flush ([`crate::runner::begin_step`]): a
/// crash loses the latest batches, and a new rebuild starts over anyway; the swap commits
/// synchronously, which flushes everything before it.
#[async_trait]
pub trait Fill: Send {
    /// Takes the next batch of the feed.
    async fn push(&mut self, pool: &PgPool, batch: Vec<StoredEvent>) -> Result<(), RebuildError>;

    /// Writes what it still holds: afterwards the new generation holds the effects of every
    /// event pushed (the rebuild then moves its checkpoint to the last of them).
    async fn finish(&mut self, pool: &PgPool) -> Result<(), RebuildError>;
}

#[cfg(test)]
mod tests {
    use super::in_parts;

    #[test]
    fn parts_keep_the_order_and_leave_none_empty() {
        assert_eq!(
            in_parts((1..=5).collect(), 2),
            vec![vec![1, 2], vec![3, 4], vec![5]]
        );
        assert_eq!(in_parts(vec![1, 2], 0), vec![vec![1], vec![2]]);
        assert!(in_parts(Vec::<u8>::new(), 3).is_empty());
    }
}
