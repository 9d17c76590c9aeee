//! Queries of the SQLite read side: model lists (filters, sorts, paging, tenant
//! isolation), versions, and the audit list, with the PostgreSQL semantics.

#[path = "sqlite_support.rs"]
mod support;

use std::time::Duration;

use projections::audit::{AuditFilter, AuditResult, Page};
use projections::models::query::{ListPage, ModelFilter, SortColumn};
use projections::sqlite::{audit, models};
use serde_json::{json, Value};
use sqlx::SqlitePool;
use support::*;
use uuid::Uuid;

const A1: &str = "0a000000-0000-4000-8000-000000000001";
const A2: &str = "0a000000-0000-4000-8000-000000000002";
const A3: &str = "0a000000-0000-4000-8000-000000000003";
const G1: &str = "0b000000-0000-4000-8000-000000000001";

fn id(text: &str) -> Uuid {
    Uuid::parse_str(text).expect("uuid")
}

/// Three acme models (one published) and one globex model with an acme key.
async fn models_fixture(file: &TestFile) {
    let pool = &file.pool;
    let create = |key: &'static str, name: &'static str, tenant: &'static str, category| {
        [("ModelCreated", created(key, name, tenant, category))]
    };
    command(
        pool,
        &ALICE,
        "CreateModel",
        A1,
        1,
        &create("alpha", "Alpha Order", "acme", Some("sales")),
        at(1),
    )
    .await;
    command(
        pool,
        &BOB,
        "CreateModel",
        A2,
        1,
        &create("beta", "Beta Ärger", "acme", Some("hr")),
        at(2),
    )
    .await;
    command(
        pool,
        &ALICE,
        "CreateModel",
        A3,
        1,
        &create("gamma", "Gamma order", "acme", Some("sales")),
        at(3),
    )
    .await;
    let json = [(
        "ModelJsonReplaced",
        json!({"modelJson": {"childShapes": [{"id": "start"}]}}),
    )];
    command(pool, &ALICE, "UpdateModelJson", A3, 2, &json, at(4)).await;
    let publish = [("ModelPublished", json!({"version": 1, "comment": "go"}))];
    command(pool, &ALICE, "PublishModel", A3, 3, &publish, at(5)).await;
    let last = command(
        pool,
        &CAROL,
        "CreateModel",
        G1,
        1,
        &create("alpha", "Alpha Globex", "globex", None),
        at(6),
    )
    .await;
    project_to(file, last[0]).await;
}

async fn project_to(file: &TestFile, position: i64) {
    let projections = file.projections(100).await;
    let running = start(&projections);
    assert!(
        projections
            .wait_for(position, Duration::from_secs(10))
            .await
    );
    running.stop().await;
}

async fn names(
    pool: &SqlitePool,
    tenant: &str,
    filter: ModelFilter,
    page: ListPage,
) -> (Vec<String>, i64) {
    let (rows, total) = models::list(pool, tenant, &filter, page)
        .await
        .expect("list");
    assert!(
        rows.iter().all(|r| r.model_json.is_none()),
        "lists leave the JSON out"
    );
    (rows.into_iter().map(|r| r.name).collect(), total)
}

fn page(sort: SortColumn, descending: bool, start: i64, size: i64) -> ListPage {
    ListPage {
        sort,
        descending,
        start,
        size,
    }
}

#[tokio::test]
async fn model_lists_filter_sort_page_and_stay_in_their_tenant() {
    let file = TestFile::create().await;
    models_fixture(&file).await;
    let pool = &file.pool;
    let by_name = page(SortColumn::Name, false, 0, 10);
    let all = ModelFilter::default();
    assert_eq!(
        names(pool, "acme", all.clone(), by_name).await,
        (
            vec![
                "Alpha Order".into(),
                "Beta Ärger".into(),
                "Gamma order".into()
            ],
            3
        )
    );
    let like = |pattern: &str| ModelFilter {
        name_like: Some(pattern.into()),
        ..ModelFilter::default()
    };
    assert_eq!(
        names(pool, "acme", like("ORDER"), by_name).await.0,
        ["Alpha Order", "Gamma order"]
    );
    assert_eq!(
        names(pool, "acme", like("äRGER"), by_name).await.0,
        ["Beta Ärger"]
    );
    assert_eq!(
        names(pool, "acme", like("a%"), by_name).await.0,
        ["Alpha Order"]
    );
    assert_eq!(names(pool, "acme", like("zzz"), by_name).await, (vec![], 0));
    let key = ModelFilter {
        key: Some("alpha".into()),
        ..ModelFilter::default()
    };
    assert_eq!(
        names(pool, "acme", key.clone(), by_name).await.0,
        ["Alpha Order"]
    );
    assert_eq!(
        names(pool, "globex", key, by_name).await.0,
        ["Alpha Globex"]
    );
    let sales = ModelFilter {
        category: Some("sales".into()),
        ..ModelFilter::default()
    };
    assert_eq!(names(pool, "acme", sales, by_name).await.1, 2);
    let published = ModelFilter {
        status: Some("PUBLISHED".into()),
        ..ModelFilter::default()
    };
    assert_eq!(
        names(pool, "acme", published, by_name).await.0,
        ["Gamma order"]
    );
    let bob = ModelFilter {
        created_by: Some("bob".into()),
        ..ModelFilter::default()
    };
    assert_eq!(names(pool, "acme", bob, by_name).await.0, ["Beta Ärger"]);

    let newest = page(SortColumn::CreatedTime, true, 0, 10);
    assert_eq!(
        names(pool, "acme", all.clone(), newest).await.0,
        ["Gamma order", "Beta Ärger", "Alpha Order"]
    );
    let updated = page(SortColumn::UpdatedTime, true, 0, 1);
    assert_eq!(
        names(pool, "acme", all.clone(), updated).await.0,
        ["Gamma order"]
    );
    let by_key = page(SortColumn::Key, true, 0, 10);
    assert_eq!(
        names(pool, "acme", all.clone(), by_key).await.0,
        ["Gamma order", "Beta Ärger", "Alpha Order"]
    );
    let by_version = page(SortColumn::Version, false, 0, 10);
    assert_eq!(names(pool, "acme", all.clone(), by_version).await.1, 3);

    assert_eq!(
        names(
            pool,
            "acme",
            all.clone(),
            page(SortColumn::Name, false, 0, 2)
        )
        .await,
        (vec!["Alpha Order".into(), "Beta Ärger".into()], 3)
    );
    assert_eq!(
        names(
            pool,
            "acme",
            all.clone(),
            page(SortColumn::Name, false, 2, 2)
        )
        .await,
        (vec!["Gamma order".into()], 3)
    );
    assert_eq!(
        names(
            pool,
            "acme",
            all.clone(),
            page(SortColumn::Name, false, 5, 2)
        )
        .await,
        (vec![], 3)
    );
    assert_eq!(
        names(pool, "globex", all, by_name).await,
        (vec!["Alpha Globex".into()], 1)
    );

    // Another tenant's model does not exist for this one.
    assert!(models::get(pool, "acme", id(G1))
        .await
        .expect("get")
        .is_none());
    let gamma = models::get(pool, "acme", id(A3))
        .await
        .expect("get")
        .expect("gamma");
    assert_eq!(
        (gamma.status.as_str(), gamma.version, gamma.revision),
        ("PUBLISHED", 1, 3)
    );
    assert_eq!(
        gamma
            .model_json
            .as_ref()
            .map(projections::models::json_value),
        Some(json!({"childShapes": [{"id": "start"}]}))
    );
    assert_eq!(gamma.created_time, at(3));
    assert_eq!(gamma.updated_time, at(5));
}

#[tokio::test]
async fn versions_are_tenant_scoped_and_frozen() {
    let file = TestFile::create().await;
    models_fixture(&file).await;
    let pool = &file.pool;
    let versions = models::versions(pool, "acme", id(A3))
        .await
        .expect("versions");
    assert_eq!(versions.len(), 1);
    assert_eq!(
        (versions[0].version, versions[0].comment.as_deref()),
        (1, Some("go"))
    );
    assert_eq!(
        versions[0]
            .model_json
            .as_ref()
            .map(projections::models::json_value),
        Some(Value::Null)
    );
    assert_eq!(versions[0].published_by.as_deref(), Some("alice"));
    let frozen = models::version(pool, "acme", id(A3), 1)
        .await
        .expect("version")
        .expect("v1");
    assert_eq!(
        frozen
            .model_json
            .as_ref()
            .map(projections::models::json_value),
        Some(json!({"childShapes": [{"id": "start"}]}))
    );
    assert!(models::version(pool, "globex", id(A3), 1)
        .await
        .expect("version")
        .is_none());
    assert!(models::versions(pool, "globex", id(A3))
        .await
        .expect("versions")
        .is_empty());
    assert!(models::version(pool, "acme", id(A3), 2)
        .await
        .expect("version")
        .is_none());
}

async fn seqs(pool: &SqlitePool, tenant: &str, filter: AuditFilter, page: Page) -> (Vec<i64>, i64) {
    let (rows, total) = audit::list(pool, tenant, &filter, &page)
        .await
        .expect("audit list");
    assert!(rows.iter().all(|r| r.tenant_id.as_deref() == Some(tenant)));
    (rows.into_iter().map(|r| r.seq).collect(), total)
}

#[tokio::test]
async fn audit_list_filters_pages_newest_first_per_tenant() {
    let file = TestFile::create().await;
    let last = scenario(&file.pool).await;
    project_to(&file, last).await;
    let pool = &file.pool;
    let first = Page::default();
    let all = AuditFilter::default();
    assert_eq!(
        seqs(pool, "acme", all.clone(), first).await,
        (vec![11, 9, 7, 5, 4, 3, 2, 1], 8)
    );
    assert_eq!(
        seqs(pool, "globex", all.clone(), first).await,
        (vec![10, 8, 6], 3)
    );
    assert_eq!(seqs(pool, "nobody", all.clone(), first).await, (vec![], 0));
    let bob = AuditFilter {
        user_id: Some("bob".into()),
        ..AuditFilter::default()
    };
    assert_eq!(seqs(pool, "acme", bob, first).await.0, [11, 5, 4]);
    let failures = AuditFilter {
        result: Some(AuditResult::Failure),
        ..AuditFilter::default()
    };
    assert_eq!(seqs(pool, "acme", failures, first).await.0, [11, 5]);
    let publish = AuditFilter {
        action: Some("PublishModel".into()),
        ..AuditFilter::default()
    };
    assert_eq!(seqs(pool, "acme", publish, first).await.0, [5, 3]);
    let m1 = AuditFilter {
        resource_id: Some(M1.into()),
        ..AuditFilter::default()
    };
    assert_eq!(seqs(pool, "acme", m1, first).await.0, [9, 7, 5, 4, 3, 2, 1]);
    let window = AuditFilter {
        from: Some(at(3)),
        to: Some(at(7)),
        ..AuditFilter::default()
    };
    assert_eq!(seqs(pool, "acme", window, first).await, (vec![5, 4, 3], 3));
    assert_eq!(
        seqs(pool, "acme", all, Page { start: 2, size: 3 }).await,
        (vec![7, 5, 4], 8)
    );
}
