//! Reads from the projections: read-your-writes, lists with filters/sort/paging, versions,
//! and tenant isolation.

use contract_tests::{both_backends, expect_problem, publishable_model, Backend, Options, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

both_backends!(
    a_command_answers_after_the_read_tables_have_it,
    lists_filter_sort_and_page_within_the_tenant,
    list_totals_follow_category_and_status_changes,
    published_versions_are_listed_and_frozen
);

const MODELS: &str = "/api/v1/process-models";

async fn get_json(app: &TestApp, path: &str, token: &str) -> Value {
    let response = app
        .request(Method::GET, path, token)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.expect("json")
}

/// Sends a command and checks that its answer is what a `GET` right after it returns,
/// headers and body alike: the read tables had the change before the answer went out, and
/// an answer built without reading the row back (PostgreSQL) says exactly what the table
/// holds, to the microsecond.
async fn answer_equals_the_read(
    app: &TestApp,
    token: &str,
    request: reqwest::RequestBuilder,
) -> Value {
    let response = request.send().await.expect("send");
    assert!(response.status().is_success(), "{}", response.status());
    assert!(
        response.headers().get("x-read-your-writes").is_none(),
        "no timeout"
    );
    let etag = response.headers()["etag"]
        .to_str()
        .expect("etag")
        .to_owned();
    let answer: Value = response.json().await.expect("json");
    let id = answer["id"].as_str().expect("id");
    let view = app
        .request(Method::GET, &format!("{MODELS}/{id}"), token)
        .send()
        .await
        .expect("get");
    assert_eq!(
        view.headers()["etag"].to_str().expect("etag"),
        etag,
        "GET sees the write at once"
    );
    let read: Value = view.json().await.expect("json");
    assert_eq!(answer, read, "the answer is the row as stored");
    answer
}

async fn a_command_answers_after_the_read_tables_have_it(backend: Backend) {
    let app = TestApp::on(backend).await;
    let token = app.modeler();
    let created = answer_equals_the_read(
        &app,
        &token,
        app.request(Method::POST, MODELS, &token)
            .json(&json!({"key": "ryw", "name": "Read your writes"})),
    )
    .await;
    let id = created["id"].as_str().expect("id").to_owned();
    for n in 0..5 {
        let answer = answer_equals_the_read(
            &app,
            &token,
            app.request(Method::PATCH, &format!("{MODELS}/{id}"), &token)
                .json(&json!({"description": format!("edit {n}")})),
        )
        .await;
        assert_eq!(answer["description"], format!("edit {n}"));
    }
    // An editor document whose keys are not in the order PostgreSQL's jsonb keeps them, and
    // numbers in several spellings.
    let document = json!({
        "resourceId": "canvas",
        "properties": {"process_id": "ryw", "name": "Read your writes", "zIndex": 1.50},
        "stencil": {"id": "BPMNDiagram"},
        "childShapes": [],
        "bounds": {"upperLeft": {"x": 0, "y": 0.0}, "lowerRight": {"x": 1200, "y": 1e3}},
        "stencilset": {"url": "stencilsets/bpmn2.0/bpmn2.0.json", "namespace": "http://b3mn.org/stencilset/bpmn2.0#"}
    });
    answer_equals_the_read(
        &app,
        &token,
        app.request(Method::PUT, &format!("{MODELS}/{id}/model"), &token)
            .json(&document),
    )
    .await;
}

/// A replica whose models projector stands by (another replica holds its lock) gets no row
/// handed over: it reads the row back, and its answer is still what a `GET` returns.
#[tokio::test]
async fn a_replica_without_the_models_projector_answers_with_the_row_it_reads() {
    let leader = TestApp::on(Backend::Postgres).await;
    let token = leader.modeler();
    // Answered without a timeout, so the leader's runner holds the projector's lock.
    let created = answer_equals_the_read(
        &leader,
        &token,
        leader
            .request(Method::POST, MODELS, &token)
            .json(&json!({"key": "replica", "name": "Replica"})),
    )
    .await;
    let id = created["id"].as_str().expect("id").to_owned();
    let standby = TestApp::spawn_on(leader.database().to_owned(), Options::default()).await;
    let standby_token = standby.modeler();
    for n in 0..3 {
        let answer = answer_equals_the_read(
            &standby,
            &standby_token,
            standby
                .request(Method::PATCH, &format!("{MODELS}/{id}"), &standby_token)
                .json(&json!({"description": format!("from the standby {n}")})),
        )
        .await;
        assert_eq!(answer["description"], format!("from the standby {n}"));
        assert_eq!(answer["revision"], n + 2);
    }
    drop(standby);
}

async fn lists_filter_sort_and_page_within_the_tenant(backend: Backend) {
    let app = TestApp::on(backend).await;
    let token = app.modeler();
    for (key, name, category) in [
        ("b", "Beta", "sales"),
        ("a", "Alpha", "sales"),
        ("c", "Gamma", "hr"),
    ] {
        let response = app
            .request(Method::POST, MODELS, &token)
            .json(&json!({"key": key, "name": name, "category": category}))
            .send()
            .await
            .expect("create");
        assert_eq!(response.status(), 201);
    }
    let other = app.token("bob", "globex", &["access-modeler"]);
    app.create(&other, "foreign").await;

    let page = get_json(&app, MODELS, &token).await;
    assert_eq!(page["total"], 3, "only the caller's tenant");
    let names: Vec<&str> = page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| m["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["Alpha", "Beta", "Gamma"]);
    assert_eq!(
        (page["start"].as_i64(), page["size"].as_i64()),
        (Some(0), Some(10))
    );
    assert_eq!(
        (page["sort"].as_str(), page["order"].as_str()),
        (Some("name"), Some("asc"))
    );
    assert!(
        page["data"][0].get("modelJson").is_none(),
        "lists leave the editor JSON out"
    );

    let page = get_json(
        &app,
        &format!("{MODELS}?category=sales&sort=key&order=desc"),
        &token,
    )
    .await;
    let keys: Vec<&str> = page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| m["key"].as_str().expect("key"))
        .collect();
    assert_eq!(keys, ["b", "a"]);

    let page = get_json(&app, &format!("{MODELS}?nameLike=amm"), &token).await;
    assert_eq!(page["total"], 1);
    let page = get_json(&app, &format!("{MODELS}?start=1&size=1&sort=name"), &token).await;
    assert_eq!(
        (page["total"].as_i64(), page["data"][0]["name"].as_str()),
        (Some(3), Some("Beta"))
    );
    let page = get_json(&app, &format!("{MODELS}?status=PUBLISHED"), &token).await;
    assert_eq!(page["total"], 0);

    for bad in [
        "sort=colour",
        "order=up",
        "size=1001",
        "size=-1",
        "start=-5",
        "start=abc",
        "status=GONE",
        "unknown=1",
    ] {
        let response = app
            .request(Method::GET, &format!("{MODELS}?{bad}"), &token)
            .send()
            .await
            .expect("send");
        expect_problem(response, 400).await;
    }
}

/// The totals of lists filtered by category and status (on PostgreSQL the sums of the
/// counts the database keeps, migration 0010) follow creates, moves between categories,
/// publishes, archives and restores, per tenant, and agree with the filters' rows.
async fn list_totals_follow_category_and_status_changes(backend: Backend) {
    let app = TestApp::on(backend).await;
    let token = app.modeler();
    let mut ids = Vec::new();
    for (key, category) in [
        ("a", Some("sales")),
        ("b", Some("sales")),
        ("c", Some("hr")),
        ("d", None),
    ] {
        let mut body = json!({"key": key, "name": key, "modelJson": publishable_model()});
        if let Some(category) = category {
            body["category"] = json!(category);
        }
        let response = app
            .request(Method::POST, MODELS, &token)
            .json(&body)
            .send()
            .await
            .expect("create");
        assert_eq!(response.status(), 201);
        let created: Value = response.json().await.expect("json");
        ids.push(created["id"].as_str().expect("id").to_owned());
    }
    let other = app.token("bob", "globex", &["access-modeler"]);
    app.create(&other, "foreign").await;
    // b moves to hr; c is published; d is published, archived and restored from version 1
    // (a draft again); a is archived.
    let model = |n: usize, action: &str| format!("{MODELS}/{}{action}", ids[n]);
    for (method, path, body) in [
        (Method::PATCH, model(1, ""), json!({"category": "hr"})),
        (Method::POST, model(2, "/publish"), json!({})),
        (Method::POST, model(3, "/publish"), json!({})),
        (Method::POST, model(3, "/archive"), json!({})),
        (Method::POST, model(3, "/restore"), json!({"version": 1})),
        (Method::POST, model(0, "/archive"), json!({})),
    ] {
        let response = app
            .request(method, &path, &token)
            .json(&body)
            .send()
            .await
            .expect("command");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }
    let mut statuses = Vec::new();
    for id in &ids {
        let model = get_json(&app, &format!("{MODELS}/{id}"), &token).await;
        statuses.push(model["status"].as_str().expect("status").to_owned());
    }
    assert_eq!(statuses, ["ARCHIVED", "DRAFT", "PUBLISHED", "DRAFT"]);
    for (query, expected) in [
        ("", 4),
        ("?category=sales", 1),
        ("?category=hr", 2),
        ("?category=none", 0),
        ("?status=ARCHIVED", 1),
        ("?status=PUBLISHED", 1),
        ("?status=DRAFT", 2),
        ("?category=hr&status=PUBLISHED", 1),
        ("?category=hr&status=ARCHIVED", 0),
        ("?category=sales&status=ARCHIVED", 1),
        ("?createdBy=nobody&category=hr", 0),
    ] {
        let page = get_json(&app, &format!("{MODELS}{query}"), &token).await;
        assert_eq!(page["total"], expected, "total of {query:?}");
        assert_eq!(
            page["data"].as_array().expect("data").len() as i64,
            expected,
            "rows of {query:?}"
        );
    }
    let foreign = get_json(&app, &format!("{MODELS}?status=DRAFT"), &other).await;
    assert_eq!(foreign["total"], 1, "the other tenant's count");
}

async fn published_versions_are_listed_and_frozen(backend: Backend) {
    let app = TestApp::on(backend).await;
    let token = app.modeler();
    let model = publishable_model();
    let response = app
        .request(Method::POST, MODELS, &token)
        .json(&json!({"key": "v", "name": "Versioned", "modelJson": model}))
        .send()
        .await
        .expect("create");
    let id = response.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = |s: &str| format!("{MODELS}/{id}{s}");
    let response = app
        .request(Method::POST, &path("/publish"), &token)
        .json(&json!({"comment": "v1"}))
        .send()
        .await
        .expect("publish");
    assert_eq!(response.status(), 200);
    // Version 2: change the name and publish again.
    app.request(Method::PATCH, &path(""), &token)
        .json(&json!({"name": "Versioned 2"}))
        .send()
        .await
        .expect("patch");
    let response = app
        .request(Method::POST, &path("/publish"), &token)
        .send()
        .await
        .expect("publish");
    assert_eq!(response.status(), 200);

    let versions = get_json(&app, &path("/versions"), &token).await;
    assert_eq!(versions["total"], 2);
    assert_eq!(versions["data"][0]["comment"], "v1");
    assert_eq!(versions["data"][0]["name"], "Versioned");
    assert_eq!(versions["data"][1]["name"], "Versioned 2");
    let v1 = get_json(&app, &path("/versions/1"), &token).await;
    assert_eq!(v1["modelJson"], model);
    assert_eq!(v1["publishedBy"], "alice");
    let response = app
        .request(Method::GET, &path("/versions/7"), &token)
        .send()
        .await
        .expect("send");
    expect_problem(response, 404).await;

    let intruder = app.token("eve", "globex", &["access-modeler"]);
    for suffix in ["/versions", "/versions/1"] {
        let response = app
            .request(Method::GET, &path(suffix), &intruder)
            .send()
            .await
            .expect("send");
        expect_problem(response, 404).await;
    }
}
