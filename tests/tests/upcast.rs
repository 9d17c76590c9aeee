//! An event stored in an old version is read in its current shape by the command side, the
//! live projection and a rebuild alike (docs/adr/0002-event-versioning.md).

use std::time::{Duration, Instant};

use contract_tests::{publishable_model, TestApp, ADMIN, MODELER};
use reqwest::Method;
use serde_json::{json, Value};

const MODELS: &str = "/api/v1/process-models";

#[tokio::test]
async fn a_stored_model_restored_1_0_reads_as_2_0_everywhere() {
    let app = TestApp::spawn().await;
    let token = app.token("root", "acme", &[MODELER, ADMIN]);
    let model = publishable_model();
    let created: Value = app
        .request(Method::POST, MODELS, &token)
        .json(&json!({"key": "old", "name": "Old", "modelJson": model}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    let path = |s: &str| format!("{MODELS}/{id}{s}");
    app.request(Method::POST, &path("/publish"), &token)
        .send()
        .await
        .expect("publish");
    app.request(Method::PUT, &path("/model"), &token)
        .json(&json!({"stencil": {"id": "BPMNDiagram"}, "childShapes": []}))
        .send()
        .await
        .expect("edit opens v2");
    app.request(Method::POST, &path("/archive"), &token)
        .send()
        .await
        .expect("archive");

    // As an older build wrote it: version 1.0, field `fromVersion`.
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('ProcessModel', $1, 6, 'ModelRestored', '1.0', $2, $3)",
    )
    .bind(&id)
    .bind(json!({"ModelRestored": {"version": 3, "fromVersion": 1}}))
    .bind(json!({"user_id": "legacy", "tenant_id": "acme", "correlation_id": "old-build", "command": "RestoreModel", "time": "2026-01-01T00:00:00.000000Z"}))
    .execute(app.pool())
    .await
    .expect("store a 1.0 event");

    // The live projection reads it (restoring version 1's content).
    let deadline = Instant::now() + Duration::from_secs(10);
    let view = loop {
        let view: Value = app
            .request(Method::GET, &path(""), &token)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if view["revision"] == 6 {
            break view;
        }
        assert!(
            Instant::now() < deadline,
            "projection did not apply the old event: {view}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        (view["status"].as_str(), view["version"].as_u64()),
        (Some("DRAFT"), Some(3))
    );
    assert_eq!(view["modelJson"], model);

    // The command side loads it too: a draft edit keeps version 3.
    let response = app
        .request(Method::PATCH, &path(""), &token)
        .header("If-Match", "\"6\"")
        .json(&json!({"name": "Old, restored"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        (body["version"].as_u64(), body["revision"].as_u64()),
        (Some(3), Some(7))
    );

    // And a rebuild from scratch gives the same row.
    let before: Value = sqlx::query_scalar(
        "SELECT to_jsonb(m) - 'generation' FROM process_models m WHERE id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(app.pool())
    .await
    .expect("row");
    app.rebuild_to(&token, "process_models", 2).await;
    let after: Value = sqlx::query_scalar("SELECT to_jsonb(m) - 'generation' FROM process_models m WHERE id = $1::uuid AND generation = 2")
        .bind(&id)
        .fetch_one(app.pool())
        .await
        .expect("row");
    assert_eq!(after, before);
}
