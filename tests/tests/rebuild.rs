//! Rebuilding read models: the rebuilt tables equal what normal use produced, the swap is
//! seamless, and the live projector carries on at the new generation.

use std::time::{Duration, Instant};

use contract_tests::{expect_problem, publishable_model, Options, TestApp, ADMIN, MODELER};
use reqwest::Method;
use serde_json::{json, Value};

const MODELS: &str = "/api/v1/process-models";

/// Everything in the read tables of the active generation, in a stable order, once the
/// model counts of the generation are checked against its rows.
async fn snapshot(app: &TestApp) -> (Vec<Value>, Vec<Value>) {
    assert_counts_match_the_rows(app).await;
    let models: Vec<Value> = sqlx::query_scalar(
        "SELECT to_jsonb(m) - 'generation' FROM process_models m
          WHERE generation = (SELECT active FROM projection_generations WHERE name = 'process_models')
          ORDER BY id",
    )
    .fetch_all(app.pool())
    .await
    .expect("models");
    let versions: Vec<Value> = sqlx::query_scalar(
        "SELECT to_jsonb(v) - 'generation' FROM model_versions v
          WHERE generation = (SELECT active FROM projection_generations WHERE name = 'process_models')
          ORDER BY model_id, version",
    )
    .fetch_all(app.pool())
    .await
    .expect("versions");
    (models, versions)
}

/// The counts the database keeps per tenant, category and status (migration 0010) equal
/// those of the active generation's rows; a count that fell to 0 may stay as a row.
async fn assert_counts_match_the_rows(app: &TestApp) {
    let mismatches: Vec<Value> = sqlx::query_scalar(
        "WITH active AS (SELECT active FROM projection_generations WHERE name = 'process_models'),
              kept AS (SELECT tenant_id, category, status, models FROM process_model_counts, active
                        WHERE generation = active AND models > 0),
              counted AS (SELECT tenant_id, category, status, count(*) AS models
                            FROM process_models, active WHERE generation = active
                           GROUP BY tenant_id, category, status)
         SELECT jsonb_build_object('kept', to_jsonb(k), 'counted', to_jsonb(c))
           FROM kept k FULL JOIN counted c
             ON k.tenant_id = c.tenant_id AND k.category IS NOT DISTINCT FROM c.category
            AND k.status = c.status
          WHERE k.models IS DISTINCT FROM c.models",
    )
    .fetch_all(app.pool())
    .await
    .expect("counts");
    assert_eq!(mismatches, Vec::<Value>::new(), "model counts");
}

/// Sends a request of the scenario and insists that it succeeded.
async fn succeed(request: reqwest::RequestBuilder, what: &str) -> reqwest::Response {
    let response = request.send().await.expect(what);
    assert!(
        response.status().is_success(),
        "{what}: {}",
        response.status()
    );
    response
}

async fn use_the_service(app: &TestApp, token: &str) {
    for n in 0..6 {
        let key = format!("m{n}");
        let mut body =
            json!({"key": key, "name": format!("Model {n}"), "modelJson": publishable_model()});
        // Two categories and none: the model counts (migration 0010) have a NULL category.
        if n % 3 != 2 {
            body["category"] = json!(format!("cat-{}", n % 2));
        }
        let response = succeed(
            app.request(Method::POST, MODELS, token).json(&body),
            "create",
        )
        .await;
        let id = response.json::<Value>().await.expect("json")["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let path = |s: &str| format!("{MODELS}/{id}{s}");
        succeed(
            app.request(Method::POST, &path("/publish"), token),
            "publish",
        )
        .await;
        if n % 2 == 0 {
            succeed(
                app.request(Method::PATCH, &path(""), token)
                    .json(&json!({"name": format!("Renamed {n}"), "category": "moved"})),
                "patch",
            )
            .await;
            succeed(
                app.request(Method::POST, &path("/publish"), token)
                    .json(&json!({"comment": "second"})),
                "publish",
            )
            .await;
        }
        if n % 3 == 0 {
            // Edited after its publishes, then version 1 restored: a rebuild folds all of
            // this in one batch, where version 1 freezes the JSON stored before the batch
            // and the restore must bring it back over the edit.
            let mut edited = publishable_model();
            edited["properties"] = json!({"documentation": format!("edited {n}")});
            succeed(
                app.request(Method::PUT, &path("/model"), token)
                    .json(&edited),
                "replace model JSON",
            )
            .await;
            succeed(
                app.request(Method::POST, &path("/archive"), token),
                "archive",
            )
            .await;
            succeed(
                app.request(Method::POST, &path("/restore"), token)
                    .json(&json!({"version": 1})),
                "restore",
            )
            .await;
        }
    }
}

async fn wait_for_generation(app: &TestApp, token: &str, generation: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status: Value = app
            .request(Method::GET, "/api/v1/admin/projections", token)
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("json");
        let models = status["data"]
            .as_array()
            .expect("data")
            .iter()
            .find(|p| p["name"] == "process_models")
            .cloned()
            .expect("process_models listed");
        let done = models["rebuild"]["running"] == false && models["generation"] == generation;
        assert!(
            models["rebuild"]["error"].is_null(),
            "rebuild failed: {models}"
        );
        if done {
            return models;
        }
        assert!(
            Instant::now() < deadline,
            "rebuild did not finish: {models}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_rebuild_reproduces_the_read_tables_and_the_live_projector_carries_on() {
    rebuild_reproduces_the_read_tables(TestApp::spawn().await).await;
}

/// The fill writes its window after every batch of two events: models come back from the
/// rows an earlier window wrote (without their editor JSON), and publishes and restores
/// refer to versions an earlier window wrote.
#[tokio::test]
async fn a_rebuild_in_windows_of_one_small_batch_reproduces_the_read_tables() {
    rebuild_reproduces_the_read_tables(rebuilding_in(2, Some(0)).await).await;
}

/// Batches of two events into one window, which holds every model: each model is written
/// once, at the end.
#[tokio::test]
async fn a_rebuild_of_small_batches_into_one_window_reproduces_the_read_tables() {
    rebuild_reproduces_the_read_tables(rebuilding_in(2, None).await).await;
}

/// Batches of two events into a window with room for the six models' rows but not for their
/// editor JSON: the window inserts the models it created (and the versions they published)
/// as it goes, keeps their rows without the JSON, and rewrites those changed since at the
/// end.
#[tokio::test]
async fn a_rebuild_that_inserts_new_models_as_it_goes_reproduces_the_read_tables() {
    rebuild_reproduces_the_read_tables(rebuilding_in(2, Some(10_000)).await).await;
}

/// An app whose rebuilds read `batch` events at a time and may hold `memory` bytes (the
/// default when `None`).
async fn rebuilding_in(batch: i64, memory: Option<u64>) -> TestApp {
    let mut settings = vec![("projections.rebuild_batch_size", json!(batch))];
    if let Some(memory) = memory {
        settings.push(("projections.rebuild_memory_bytes", json!(memory)));
    }
    TestApp::spawn_with(Options {
        settings,
        ..Options::default()
    })
    .await
}

async fn rebuild_reproduces_the_read_tables(app: TestApp) {
    let token = app.token("root", "acme", &[MODELER, ADMIN]);
    use_the_service(&app, &token).await;
    let before = snapshot(&app).await;
    assert_eq!(before.0.len(), 6);
    // Each published version froze the JSON of its time (the copy inside the database), and
    // restoring version 1 undid the edit that followed the publishes.
    assert_eq!(before.1.len(), 9);
    for version in &before.1 {
        assert_eq!(version["model_json"], publishable_model(), "{version}");
    }
    for model in &before.0 {
        assert_eq!(model["model_json"], publishable_model(), "{model}");
    }

    let response = app
        .request(
            Method::POST,
            "/api/v1/admin/projections/process_models/rebuild",
            &token,
        )
        .send()
        .await
        .expect("rebuild");
    assert_eq!(response.status(), 202);
    let status = wait_for_generation(&app, &token, 2).await;
    assert_eq!(status["lag"], 0);
    assert_eq!(
        snapshot(&app).await,
        before,
        "rebuilt content equals the incrementally built one"
    );
    let leftovers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM process_models WHERE generation <> 2")
            .fetch_one(app.pool())
            .await
            .expect("count");
    assert_eq!(leftovers, 0, "the old generation is gone");
    let tables: Vec<(String, Option<Vec<String>>)> = sqlx::query_as(
        "SELECT c.relname::text, c.reloptions FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent IN ('process_models'::regclass, 'model_versions'::regclass)
          ORDER BY 1",
    )
    .fetch_all(app.pool())
    .await
    .expect("partitions");
    assert_eq!(
        tables,
        [
            ("model_versions_g2".to_owned(), None),
            ("process_models_g2".to_owned(), None)
        ],
        "one table per read table, attached, with the fill factor of the rebuild reset"
    );

    // Writes after the swap land in the new generation and are read back at once.
    let list: Value = app
        .request(Method::GET, MODELS, &token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let id = list["data"][0]["id"].as_str().expect("id").to_owned();
    let response = app
        .request(Method::PATCH, &format!("{MODELS}/{id}"), &token)
        .json(&json!({"description": "after the rebuild"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("x-read-your-writes").is_none());
    let view: Value = app
        .request(Method::GET, &format!("{MODELS}/{id}"), &token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(view["description"], "after the rebuild");
}

#[tokio::test]
async fn projection_admin_needs_the_admin_privilege_and_a_known_name() {
    let app = TestApp::spawn().await;
    let modeler = app.modeler();
    for (method, path) in [
        (Method::GET, "/api/v1/admin/projections"),
        (
            Method::POST,
            "/api/v1/admin/projections/process_models/rebuild",
        ),
    ] {
        let response = app
            .request(method, path, &modeler)
            .send()
            .await
            .expect("send");
        expect_problem(response, 403).await;
    }
    let admin = app.token("root", "acme", &[ADMIN]);
    let response = app
        .request(
            Method::POST,
            "/api/v1/admin/projections/nothing/rebuild",
            &admin,
        )
        .send()
        .await
        .expect("send");
    expect_problem(response, 404).await;
}
