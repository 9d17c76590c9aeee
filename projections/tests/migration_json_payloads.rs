//! Migration 0012 on a database that already holds events and snapshots: their payloads turn
//! from `jsonb` into `json` holding the text they were read as before, so every reader sees
//! the same text after the upgrade; the columns keep their compression method.

mod common;

use common::{migrate_before, TestDb};
use sqlx::Executor;

#[tokio::test]
async fn stored_payloads_keep_their_text() {
    let db = TestDb::create_empty().await;
    migrate_before(&db.pool, "0012").await;
    // Key order, spacing and number forms that `jsonb` normalizes when it stores them.
    db.pool
        .execute(
            r#"INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                                   payload, metadata)
               VALUES ('ProcessModel', 'm1', 1, 'ModelCreated', '1.0',
                       '{"ModelCreated": {"name": "n", "key": "k", "modelJson": {"b": 1.50, "a": [1e2, -0.0]}}}',
                       '{"tenant_id": "t"}'),
                      ('ProcessModel', 'm1', 2, 'MetadataChanged', '1.0',
                       '{"MetadataChanged":{"name":"ü \u00e9"}}', '{}');
               INSERT INTO aggregate_snapshots (aggregate_type, aggregate_id, sequence, schema, payload)
               VALUES ('ProcessModel', 'm1', 2, 's1', '{"z": 1, "y": {"x": 2.0}}');"#,
        )
        .await
        .expect("store events and a snapshot before 0012");
    let texts = |table: &'static str| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(&format!(
                "SELECT payload::text FROM {table} ORDER BY sequence"
            ))
            .fetch_all(&pool)
            .await
            .expect("payload texts")
        }
    };
    let events_before = texts("events").await;
    let snapshots_before = texts("aggregate_snapshots").await;

    db.migrate().await;

    let types: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT attrelid::regclass::text, format_type(atttypid, atttypmod), attcompression::text
           FROM pg_attribute
          WHERE attrelid IN ('events'::regclass, 'aggregate_snapshots'::regclass)
            AND attname = 'payload'
          ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .expect("column types");
    let lz4: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT FROM pg_settings WHERE name = 'default_toast_compression'
                           AND 'lz4' = ANY (enumvals))",
    )
    .fetch_one(&db.pool)
    .await
    .expect("lz4 support");
    let method = if lz4 { "l" } else { "" };
    assert_eq!(
        types,
        vec![
            ("aggregate_snapshots".into(), "json".into(), method.into()),
            ("events".into(), "json".into(), method.into()),
        ]
    );
    assert_eq!(texts("events").await, events_before);
    assert_eq!(texts("aggregate_snapshots").await, snapshots_before);
    assert_eq!(
        events_before[0],
        r#"{"ModelCreated": {"key": "k", "name": "n", "modelJson": {"a": [100, 0.0], "b": 1.50}}}"#,
        "the text is jsonb's, as readers got it before the upgrade"
    );
}
