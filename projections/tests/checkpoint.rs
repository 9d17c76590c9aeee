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
