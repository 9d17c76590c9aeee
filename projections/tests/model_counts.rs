//! The models projector keeps `process_model_counts` equal to its rows' counts (migration
//! 0011): creates, category changes, publishes, archives and restores, one event per batch
//! and several per batch (where a batch's changes net out per key). The row triggers leave
//! the projector's rows to it: counted twice, the counts would differ from the rows'.

mod common;
#[path = "common/audit_fixtures.rs"]
mod fixtures;

use common::TestDb;
use fixtures::{model_counts, project, project_live, scenario};
use projections::models::ModelsProjector;

#[tokio::test]
async fn the_counts_follow_the_rows_whatever_the_batch_size() {
    for batch in [1, 4, 100] {
        let db = TestDb::create().await;
        let last = scenario(&db.pool).await;
        project(&db.pool, &ModelsProjector::live(), batch, last).await;
        let (kept, counted) = model_counts(&db.pool, 1).await;
        assert_eq!(
            counted.len(),
            2,
            "both models are projected (batch {batch})"
        );
        assert_eq!(kept, counted, "batch {batch}");
    }
}

/// The live step counts in the statement that writes the rows and moves the checkpoint:
/// it must take the counts over before its first row is written.
#[tokio::test]
async fn the_live_step_counts_its_rows_once_whatever_the_batch_size() {
    for (batch, with_read) in [(1, true), (4, true), (100, true), (1, false), (100, false)] {
        let db = TestDb::create().await;
        let last = scenario(&db.pool).await;
        project_live(&db.pool, &ModelsProjector::live(), batch, last, with_read).await;
        let (kept, counted) = model_counts(&db.pool, 1).await;
        let case = format!("batch {batch}, read with the batch: {with_read}");
        assert_eq!(counted.len(), 2, "both models are projected ({case})");
        assert_eq!(kept, counted, "{case}");
    }
}
