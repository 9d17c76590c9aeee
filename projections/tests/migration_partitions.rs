//! Migration 0009 on a database that already holds read-model rows: each generation's rows
//! move into a table of their own, attached as a partition; the active generation gets one
//! even without rows; the partitioned tables keep every index they had. Migration 0010 then
//! counts each generation's models.

mod common;

use common::{migrate_before, TestDb};
use serde_json::{json, Value};
use sqlx::{Executor, PgPool};

/// The indexes of the three read tables, as `CREATE INDEX` text without the schema or `ONLY`.
async fn index_definitions(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT regexp_replace(pg_get_indexdef(indexrelid), ' ON (ONLY )?public\\.', ' ON ')
           FROM pg_index
          WHERE indrelid::regclass::text IN ('process_models', 'model_versions', 'audit_logs')
          ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("index definitions")
}

async fn generations(pool: &PgPool, table: &str) -> Vec<i64> {
    sqlx::query_scalar("SELECT generation_tables($1::regclass)")
        .bind(table)
        .fetch_all(pool)
        .await
        .expect("generation tables")
}

async fn attached(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_inherits WHERE inhparent = $1::regclass")
        .bind(table)
        .fetch_one(pool)
        .await
        .expect("partitions")
}

#[tokio::test]
async fn existing_rows_move_into_one_partition_per_generation() {
    let db = TestDb::create_empty().await;
    migrate_before(&db.pool, "0009").await;
    let indexes = index_definitions(&db.pool).await;
    db.pool
        .execute(
            "INSERT INTO process_models (generation, id, tenant_id, process_key, name, version,
                                         status, model_json, created_time, updated_time, revision)
             VALUES (1, '00000000-0000-0000-0000-000000000001', 't', 'k1', 'A', 1, 'DRAFT', '{}',
                     now(), now(), 1),
                    (2, '00000000-0000-0000-0000-000000000001', 't', 'k1', 'A', 1, 'DRAFT', '{}',
                     now(), now(), 1),
                    (2, '00000000-0000-0000-0000-000000000002', 't', 'k2', 'B', 2, 'PUBLISHED',
                     '{\"childShapes\": [1]}', now(), now(), 3);
             INSERT INTO model_versions (generation, model_id, version, tenant_id, process_key,
                                         name, model_json, published_time)
             VALUES (2, '00000000-0000-0000-0000-000000000002', 1, 't', 'k2', 'B',
                     '{\"childShapes\": []}', now());
             INSERT INTO audit_logs VALUES (1, 1, 1, 't', 'u', 'CreateModel', 'ProcessModel',
                     'k1', NULL, NULL, now(), 'SUCCESS', '{}', NULL, 1, 1, 'p', 'h');
             UPDATE projection_generations SET active = 2 WHERE name = 'process_models';
             UPDATE projection_generations SET active = 3 WHERE name = 'audit_logs';",
        )
        .await
        .expect("rows before 0009");

    db.migrate().await;

    assert_eq!(generations(&db.pool, "process_models").await, vec![1, 2]);
    assert_eq!(generations(&db.pool, "model_versions").await, vec![2]);
    assert_eq!(
        generations(&db.pool, "audit_logs").await,
        vec![1, 3],
        "the rows' generation, and the active one without rows"
    );
    assert_eq!(attached(&db.pool, "process_models").await, 2);
    assert_eq!(attached(&db.pool, "model_versions").await, 1);
    assert_eq!(attached(&db.pool, "audit_logs").await, 2);
    assert_eq!(
        index_definitions(&db.pool).await,
        indexes,
        "the same indexes"
    );

    let models: Vec<(i64, String, Value)> = sqlx::query_as(
        "SELECT generation, process_key, model_json FROM process_models ORDER BY 1, 2",
    )
    .fetch_all(&db.pool)
    .await
    .expect("models");
    assert_eq!(
        models,
        vec![
            (1, "k1".to_owned(), json!({})),
            (2, "k1".to_owned(), json!({})),
            (2, "k2".to_owned(), json!({"childShapes": [1]})),
        ]
    );
    let in_partition: i64 = sqlx::query_scalar("SELECT count(*) FROM process_models_g2")
        .fetch_one(&db.pool)
        .await
        .expect("generation 2's table");
    assert_eq!(in_partition, 2);
    let version: Value = sqlx::query_scalar("SELECT model_json FROM model_versions_g2")
        .fetch_one(&db.pool)
        .await
        .expect("the version");
    assert_eq!(version, json!({"childShapes": []}));
    let counts: Vec<(i64, String, Option<String>, String, i64)> = sqlx::query_as(
        "SELECT generation, tenant_id, category, status, models FROM process_model_counts
          ORDER BY 1, 2, 3, 4",
    )
    .fetch_all(&db.pool)
    .await
    .expect("model counts");
    let count = |generation, status: &str| (generation, "t".to_owned(), None, status.to_owned(), 1);
    assert_eq!(
        counts,
        vec![count(1, "DRAFT"), count(2, "DRAFT"), count(2, "PUBLISHED")]
    );
    let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_logs_g1 WHERE hash = 'h'")
        .fetch_one(&db.pool)
        .await
        .expect("the audit row");
    assert_eq!(audit, 1);
}
