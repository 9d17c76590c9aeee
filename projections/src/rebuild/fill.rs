//! The fill of a rebuild: the feed read ahead on a connection of its own, and each batch
//! written into the new generation, by the projector (on several connections for
//! independent aggregates) or by a read model's own [`Fill`].

use std::hash::{Hash, Hasher};
use std::time::Instant;

use async_trait::async_trait;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

use super::{RebuildError, REBUILD_BATCH_BYTES};
use crate::checkpoint;
use crate::event::StoredEvent;
use crate::feed;
use crate::position::Position;
use crate::runner::{begin_step, Projector};

/// How many connections write one batch of the fill at once, for a read model whose
/// aggregates are independent: the writing backend was the bound, with a third of the two
/// cores idle (docs/performance.md).
pub(crate) const FILL_WRITERS: u64 = 2;

/// Reads the feed from position 0 into `batches` until it has passed `head` (the last
/// event committed when the rebuild started), or until the xmin gate has held it back for
/// 30 s (what it holds back then follows in the swap). Stops early when the writer is gone.
pub(super) async fn read_ahead(
    connect: &PgConnectOptions,
    head: Option<Position>,
    batch_size: i64,
    batches: tokio::sync::mpsc::Sender<Vec<StoredEvent>>,
) -> Result<(), RebuildError> {
    let Some(head) = head else {
        return Ok(());
    };
    // Its own connection, so a small pool cannot starve the writer.
    let mut conn = PgConnection::connect_with(connect).await?;
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
#[async_trait]
pub trait Fill: Send {
    /// Takes the next batch of the feed, which ends at `last`.
    async fn push(
        &mut self,
        pool: &PgPool,
        batch: Vec<StoredEvent>,
        last: Position,
    ) -> Result<(), RebuildError>;

    /// Writes what it still holds. Afterwards the new generation holds the effects of every
    /// event pushed, and the rebuild's checkpoint is at the last of them: the swap's catch-up
    /// starts from there.
    async fn finish(&mut self, pool: &PgPool) -> Result<(), RebuildError>;
}

/// The fill by the read model's projector, one transaction per batch with its checkpoint.
pub(super) struct ProjectorFill<'p> {
    pub(super) projector: &'p dyn Projector,
    /// Whether each batch is split by aggregate over [`FILL_WRITERS`] connections.
    pub(super) split: bool,
}

#[async_trait]
impl Fill for ProjectorFill<'_> {
    async fn push(
        &mut self,
        pool: &PgPool,
        batch: Vec<StoredEvent>,
        last: Position,
    ) -> Result<(), RebuildError> {
        fill(pool, self.projector, batch, last, self.split).await
    }

    async fn finish(&mut self, _pool: &PgPool) -> Result<(), RebuildError> {
        Ok(())
    }
}

/// Applies one batch of the fill and moves the rebuild's checkpoint to `last`. A batch of
/// independent aggregates is split by aggregate, each part in its own transaction, all at
/// once; the checkpoint follows once every part is in, so it never passes an event whose
/// effects are missing (the swap's catch-up starts from it). Commits need not wait for the
/// WAL flush: a crash loses the latest batches, and a new rebuild starts over anyway; the
/// swap commits synchronously, which flushes everything before it.
async fn fill(
    pool: &PgPool,
    projector: &dyn Projector,
    batch: Vec<StoredEvent>,
    last: Position,
    split: bool,
) -> Result<(), RebuildError> {
    let whole = if split {
        let parts = by_aggregate(batch, FILL_WRITERS);
        futures::future::try_join_all(parts.iter().filter(|part| !part.is_empty()).map(
            |part| async move {
                let mut tx = begin_step(pool).await?;
                projector.apply(&mut tx, part).await?;
                tx.commit().await?;
                Ok::<(), RebuildError>(())
            },
        ))
        .await?;
        None
    } else {
        Some(batch)
    };
    let mut tx = begin_step(pool).await?;
    if let Some(batch) = whole {
        projector.apply(&mut tx, &batch).await?;
    }
    checkpoint::save(&mut tx, projector.name(), last).await?;
    tx.commit().await?;
    Ok(())
}

/// `batch` in `parts` parts, each aggregate's events in one part and in their order.
fn by_aggregate(batch: Vec<StoredEvent>, parts: u64) -> Vec<Vec<StoredEvent>> {
    let mut split: Vec<Vec<StoredEvent>> = (0..parts).map(|_| Vec::new()).collect();
    for event in batch {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        event.aggregate_id.hash(&mut hasher);
        // The remainder is below `parts`, which is a small count.
        let part = (hasher.finish() % parts) as usize;
        split[part].push(event);
    }
    split
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(position: i64, aggregate: &str) -> StoredEvent {
        StoredEvent {
            global_position: position,
            tx_id: 10,
            aggregate_type: "ProcessModel".into(),
            aggregate_id: aggregate.into(),
            sequence: position,
            event_type: "MetadataChanged".into(),
            event_version: "1.0".into(),
            payload: json!({}).into(),
            metadata: json!({}).into(),
            recorded_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_split_keeps_each_aggregate_whole_and_in_order() {
        let batch: Vec<StoredEvent> = (1..=200)
            .map(|position| event(position, &format!("m{}", position % 17)))
            .collect();
        let parts = by_aggregate(batch.clone(), 2);
        assert_eq!(parts.len(), 2);
        assert!(
            parts.iter().all(|part| !part.is_empty()),
            "17 aggregates spread"
        );
        let mut seen = std::collections::HashMap::new();
        for (index, part) in parts.iter().enumerate() {
            for pair in part.windows(2) {
                assert!(
                    pair[0].global_position < pair[1].global_position,
                    "order kept"
                );
            }
            for event in part {
                let owner = *seen.entry(event.aggregate_id.clone()).or_insert(index);
                assert_eq!(owner, index, "{} is in one part", event.aggregate_id);
            }
        }
        let mut all: Vec<StoredEvent> = parts.into_iter().flatten().collect();
        all.sort_by_key(|event| event.global_position);
        assert_eq!(all, batch, "nothing lost or added");
    }
}
