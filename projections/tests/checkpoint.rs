//! Checkpoints are loaded and saved inside the consumer's transaction.

mod common;

use common::TestDb;
use projections::{checkpoint, Position};

#[tokio::test]
async fn saved_with_the_transaction_or_not_at_all() {
    let db = TestDb::create().await;
    assert_eq!(checkpoint::load(&db.pool, "p").await.expect("load"), None);

    let mut tx = db.pool.begin().await.expect("begin");
    assert_eq!(
        checkpoint::load_for_update(&mut tx, "p")
            .await
            .expect("load"),
        Position::START
    );
    checkpoint::save(&mut tx, "p", Position::new(1_000, 5))
        .await
        .expect("save");
    tx.rollback().await.expect("roll back");
    assert_eq!(checkpoint::load(&db.pool, "p").await.expect("load"), None);

    let big = Position::new(u64::from(u32::MAX) * 7 + 12, 42); // an epoch-extended xid
    let mut tx = db.pool.begin().await.expect("begin");
    checkpoint::load_for_update(&mut tx, "p")
        .await
        .expect("load");
    checkpoint::save(&mut tx, "p", big).await.expect("save");
    tx.commit().await.expect("commit");

    let saved = checkpoint::load(&db.pool, "p")
        .await
        .expect("load")
        .expect("saved");
    assert_eq!(saved.position, big);
    let mut tx = db.pool.begin().await.expect("begin");
    assert_eq!(
        checkpoint::load_for_update(&mut tx, "p")
            .await
            .expect("load"),
        big
    );
    tx.commit().await.expect("commit");

    let names: Vec<String> = checkpoint::list(&db.pool)
        .await
        .expect("list")
        .into_iter()
        .map(|checkpoint| checkpoint.name)
        .collect();
    assert_eq!(names, vec!["p".to_owned()]);
}

#[tokio::test]
async fn advance_moves_only_from_the_expected_position() {
    let db = TestDb::create().await;
    let start = Position::START;
    let first = Position::new(1_000, 5);
    let second = Position::new(1_001, 9);

    // No row yet: nothing to compare with.
    let mut tx = db.pool.begin().await.expect("begin");
    assert!(!checkpoint::advance(&mut tx, "p", start, first)
        .await
        .expect("advance"));
    checkpoint::load_for_update(&mut tx, "p")
        .await
        .expect("create the row");
    assert!(checkpoint::advance(&mut tx, "p", start, first)
        .await
        .expect("advance"));
    tx.commit().await.expect("commit");

    // From a position the row is not at: refused, nothing changes.
    let mut tx = db.pool.begin().await.expect("begin");
    assert!(!checkpoint::advance(&mut tx, "p", start, second)
        .await
        .expect("advance"));
    tx.commit().await.expect("commit");
    let stored = checkpoint::load(&db.pool, "p").await.expect("load");
    assert_eq!(stored.expect("row").position, first);

    // Rolled back with the transaction.
    let mut tx = db.pool.begin().await.expect("begin");
    assert!(checkpoint::advance(&mut tx, "p", first, second)
        .await
        .expect("advance"));
    tx.rollback().await.expect("roll back");
    let stored = checkpoint::load(&db.pool, "p").await.expect("load");
    assert_eq!(stored.expect("row").position, first);
}

#[tokio::test]
async fn an_overlapping_advance_from_the_same_position_waits_and_is_refused() {
    let db = TestDb::create().await;
    let first = Position::new(1_000, 5);
    let mut setup = db.pool.begin().await.expect("begin");
    checkpoint::load_for_update(&mut setup, "p")
        .await
        .expect("create the row");
    setup.commit().await.expect("commit");

    let mut winner = db.pool.begin().await.expect("begin");
    assert!(
        checkpoint::advance(&mut winner, "p", Position::START, first)
            .await
            .expect("advance")
    );
    let pool = db.pool.clone();
    let loser = tokio::spawn(async move {
        let mut tx = pool.begin().await.expect("begin");
        let moved = checkpoint::advance(&mut tx, "p", Position::START, Position::new(1_000, 6))
            .await
            .expect("advance");
        tx.commit().await.expect("commit");
        moved
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !loser.is_finished(),
        "the second runner waits on the row lock"
    );
    winner.commit().await.expect("commit");
    assert!(
        !loser.await.expect("task"),
        "then finds the checkpoint moved"
    );
    let stored = checkpoint::load(&db.pool, "p").await.expect("load");
    assert_eq!(stored.expect("row").position, first);
}
