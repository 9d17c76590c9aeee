//! Audit queries against real PostgreSQL: one tenant's entries of the active generation,
//! filtered by user, action, resource, result and time, newest first, paged.

mod common;
#[path = "common/audit_fixtures.rs"]
mod fixtures;

use common::TestDb;
use fixtures::{at, new_generation, project, scenario, M1, M2};
use projections::audit::{self, AuditFilter, AuditProjector, AuditResult, AuditRow, Page};
use projections::generation;
use sqlx::PgPool;

async fn projected() -> TestDb {
    let db = TestDb::create().await;
    let last = scenario(&db.pool).await;
    project(&db.pool, &AuditProjector::live(), 100, last).await;
    db
}

/// The seqs of a tenant's matching entries on one page, and the total.
async fn seqs(pool: &PgPool, tenant: &str, filter: AuditFilter, page: Page) -> (Vec<i64>, i64) {
    let (rows, total) = audit::list(pool, tenant, &filter, &page)
        .await
        .expect("list");
    (rows.iter().map(|row| row.seq).collect(), total)
}

fn all() -> Page {
    Page {
        start: 0,
        size: 100,
    }
}

#[tokio::test]
async fn lists_newest_first_within_the_tenant_only() {
    let db = projected().await;
    let acme = seqs(&db.pool, "acme", AuditFilter::default(), all()).await;
    assert_eq!(acme, (vec![11, 9, 7, 5, 4, 3, 2, 1], 8));
    let globex = seqs(&db.pool, "globex", AuditFilter::default(), all()).await;
    assert_eq!(globex, (vec![10, 8, 6], 3));
    let nobody = seqs(&db.pool, "initech", AuditFilter::default(), all()).await;
    assert_eq!(nobody, (vec![], 0));

    // Another tenant's resource id or user finds nothing.
    let foreign = AuditFilter {
        resource_id: Some(M2.to_owned()),
        ..AuditFilter::default()
    };
    assert_eq!(seqs(&db.pool, "acme", foreign, all()).await, (vec![], 0));
    let carol = AuditFilter {
        user_id: Some("carol".to_owned()),
        ..AuditFilter::default()
    };
    assert_eq!(seqs(&db.pool, "acme", carol, all()).await, (vec![], 0));
}

#[tokio::test]
async fn filters_by_user_action_resource_and_result() {
    let db = projected().await;
    let by = |filter: AuditFilter| seqs(&db.pool, "acme", filter, all());
    let bob = AuditFilter {
        user_id: Some("bob".to_owned()),
        ..AuditFilter::default()
    };
    assert_eq!(by(bob).await, (vec![11, 5, 4], 3));
    let publish = AuditFilter {
        action: Some("PublishModel".to_owned()),
        ..AuditFilter::default()
    };
    assert_eq!(by(publish.clone()).await, (vec![5, 3], 2));
    let on_m1 = AuditFilter {
        resource_id: Some(M1.to_owned()),
        ..AuditFilter::default()
    };
    assert_eq!(by(on_m1).await, (vec![9, 7, 5, 4, 3, 2, 1], 7));
    let failed = AuditFilter {
        result: Some(AuditResult::Failure),
        ..AuditFilter::default()
    };
    assert_eq!(by(failed).await, (vec![11, 5], 2));
    let failed_publish = AuditFilter {
        result: Some(AuditResult::Failure),
        ..publish
    };
    assert_eq!(by(failed_publish).await, (vec![5], 1));
}

#[tokio::test]
async fn time_range_is_from_inclusive_to_exclusive() {
    let db = projected().await;
    let range = AuditFilter {
        from: Some(at(3)),
        to: Some(at(7)),
        ..AuditFilter::default()
    };
    assert_eq!(
        seqs(&db.pool, "acme", range, all()).await,
        (vec![5, 4, 3], 3)
    );
    let since = AuditFilter {
        from: Some(at(9)),
        ..AuditFilter::default()
    };
    assert_eq!(seqs(&db.pool, "acme", since, all()).await, (vec![11, 9], 2));
    let before = AuditFilter {
        to: Some(at(2)),
        ..AuditFilter::default()
    };
    assert_eq!(seqs(&db.pool, "acme", before, all()).await, (vec![1], 1));
}

#[tokio::test]
async fn pages_keep_the_total() {
    let db = projected().await;
    let page = |start, size| Page { start, size };
    let none = AuditFilter::default;
    assert_eq!(
        seqs(&db.pool, "acme", none(), page(0, 3)).await,
        (vec![11, 9, 7], 8)
    );
    assert_eq!(
        seqs(&db.pool, "acme", none(), page(3, 3)).await,
        (vec![5, 4, 3], 8)
    );
    assert_eq!(
        seqs(&db.pool, "acme", none(), page(6, 3)).await,
        (vec![2, 1], 8)
    );
    assert_eq!(
        seqs(&db.pool, "acme", none(), page(50, 3)).await,
        (vec![], 8)
    );
    assert_eq!(
        seqs(&db.pool, "acme", none(), Page::default())
            .await
            .0
            .len(),
        8
    );
}

#[tokio::test]
async fn reads_the_active_generation_only() {
    let db = projected().await;
    let last: i64 = sqlx::query_scalar("SELECT max(global_position) FROM events")
        .fetch_one(&db.pool)
        .await
        .expect("last event");
    new_generation(&db.pool, 2).await;
    project(&db.pool, &AuditProjector::rebuild(2), 100, last).await;
    let mut conn = db.pool.acquire().await.expect("connection");
    generation::attach_partition(&mut conn, "audit_logs", 2)
        .await
        .expect("attach");
    // Generation 2 is complete but not active: each entry is listed once.
    assert_eq!(
        seqs(&db.pool, "globex", AuditFilter::default(), all()).await,
        (vec![10, 8, 6], 3)
    );
    let refused = generation::drop_partitions_except(&mut conn, "audit_logs", 2)
        .await
        .expect_err("generation 1 is active");
    common::assert_sql_state(&refused, "55006");
    sqlx::query("UPDATE projection_generations SET active = 2 WHERE name = 'audit_logs'")
        .execute(&db.pool)
        .await
        .expect("swap");
    assert_eq!(
        seqs(&db.pool, "globex", AuditFilter::default(), all()).await,
        (vec![10, 8, 6], 3)
    );
    generation::drop_partitions_except(&mut conn, "audit_logs", 2)
        .await
        .expect("drop generation 1");
    assert_eq!(
        seqs(&db.pool, "globex", AuditFilter::default(), all()).await,
        (vec![10, 8, 6], 3),
        "generation 2 alone serves the same entries"
    );
}

#[tokio::test]
async fn rows_serialise_in_camel_case() {
    let db = projected().await;
    let filter = AuditFilter {
        result: Some(AuditResult::Failure),
        ..AuditFilter::default()
    };
    let (rows, _) = audit::list(&db.pool, "globex", &filter, &all())
        .await
        .expect("list");
    let [row]: [AuditRow; 1] = rows.try_into().expect("one failure");
    let json = serde_json::to_value(&row).expect("serialise");
    assert_eq!(json["result"], "FAILURE");
    assert_eq!(json["userId"], "carol");
    assert_eq!(json["resourceId"], M2);
    assert_eq!(json["ipAddress"], "192.168.1.9");
    assert_eq!(json["userAgent"], "curl/8.5");
    assert_eq!(json["tenantId"], "globex");
    assert_eq!(json["correlationId"], "req-PublishModel-rejected");
    assert_eq!(json["details"]["reasonCode"], "stale-revision");
    assert_eq!(json["timestamp"], "2026-01-01T00:08:00.123456Z");
    assert_eq!(json["seq"], 8);
    for key in [
        "id",
        "action",
        "resource",
        "globalPosition",
        "prevHash",
        "hash",
    ] {
        assert!(json.get(key).is_some(), "{key} missing from {json}");
    }

    // The filter deserialises from the API's camelCase query too.
    let filter: AuditFilter = serde_json::from_value(serde_json::json!({
        "userId": "carol", "resourceId": M2, "result": "FAILURE",
        "from": "2026-01-01T00:00:00Z"
    }))
    .expect("filter");
    assert_eq!(filter.result, Some(AuditResult::Failure));
    assert_eq!(filter.user_id.as_deref(), Some("carol"));
}
