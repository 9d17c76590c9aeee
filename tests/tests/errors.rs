//! Bad input gets a clear problem+json 4xx and writes nothing but the rejection record.

use contract_tests::{both_backends, expect_problem, Backend, Options, TestApp};
use reqwest::Method;
use serde_json::json;

both_backends!(
    malformed_json_is_a_400,
    a_wrong_type_names_the_field,
    an_unknown_field_is_named,
    rule_violations_name_their_fields,
    a_body_over_the_limit_is_a_413,
    a_body_that_is_not_json_is_a_415,
    unknown_routes_and_ids_are_404_and_wrong_methods_405,
    a_stale_if_match_is_a_412_and_writes_nothing,
    a_patch_with_nothing_to_change_is_a_400,
    every_rejection_is_recorded_with_who_what_and_why
);

const MODELS: &str = "/api/v1/process-models";

async fn malformed_json_is_a_400(backend: Backend) {
    let app = TestApp::on(backend).await;
    let response = app
        .request(Method::POST, MODELS, &app.modeler())
        .header("content-type", "application/json")
        .body("{\"key\": \"a\",")
        .send()
        .await
        .expect("send");
    let problem = expect_problem(response, 400).await;
    assert!(problem["detail"]
        .as_str()
        .is_some_and(|d| d.contains("malformed")));
}

async fn a_wrong_type_names_the_field(backend: Backend) {
    let app = TestApp::on(backend).await;
    let response = app
        .request(Method::POST, MODELS, &app.modeler())
        .json(&json!({"key": "a", "name": 42}))
        .send()
        .await
        .expect("send");
    let problem = expect_problem(response, 400).await;
    assert!(problem["errors"]["name"].is_array(), "{problem}");
}

async fn an_unknown_field_is_named(backend: Backend) {
    let app = TestApp::on(backend).await;
    let response = app
        .request(Method::POST, MODELS, &app.modeler())
        .json(&json!({"key": "a", "name": "A", "colour": "red"}))
        .send()
        .await
        .expect("send");
    let problem = expect_problem(response, 400).await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("colour")),
        "{problem}"
    );
}

async fn rule_violations_name_their_fields(backend: Backend) {
    let app = TestApp::on(backend).await;
    for (body, field) in [
        (json!({"key": "1abc", "name": "A"}), "key"),
        (json!({"key": "a b", "name": "A"}), "key"),
        (json!({"key": "k".repeat(51), "name": "A"}), "key"),
        (json!({"key": "a", "name": ""}), "name"),
        (json!({"key": "a", "name": "n".repeat(101)}), "name"),
        (
            json!({"key": "a", "name": "A", "category": "c".repeat(51)}),
            "category",
        ),
        (
            json!({"key": "a", "name": "A", "description": "d".repeat(4001)}),
            "description",
        ),
        (
            json!({"key": "a", "name": "A", "modelJson": [1, 2]}),
            "modelJson",
        ),
    ] {
        let response = app
            .request(Method::POST, MODELS, &app.modeler())
            .json(&body)
            .send()
            .await
            .expect("send");
        let problem = expect_problem(response, 400).await;
        assert!(problem["errors"][field].is_array(), "{field}: {problem}");
    }
    assert_eq!(app.count_events("ProcessModel").await, 0, "nothing written");
}

async fn a_body_over_the_limit_is_a_413(backend: Backend) {
    let app = TestApp::on_with(
        backend,
        Options {
            body_limit_bytes: 1024,
            ..Options::default()
        },
    )
    .await;
    let response = app
        .request(Method::POST, MODELS, &app.modeler())
        .json(&json!({"key": "a", "name": "A", "description": "x".repeat(2000)}))
        .send()
        .await
        .expect("send");
    expect_problem(response, 413).await;
    assert_eq!(app.count_events("ProcessModel").await, 0);
}

async fn a_body_that_is_not_json_is_a_415(backend: Backend) {
    let app = TestApp::on(backend).await;
    let response = app
        .request(Method::POST, MODELS, &app.modeler())
        .header("content-type", "text/plain")
        .body("key=a")
        .send()
        .await
        .expect("send");
    expect_problem(response, 415).await;
}

async fn unknown_routes_and_ids_are_404_and_wrong_methods_405(backend: Backend) {
    let app = TestApp::on(backend).await;
    let token = app.modeler();
    for path in [
        "/api/v1/nothing-here",
        "/api/v1/process-models/not-a-uuid",
        "/api/v1/process-models/0b9a3d7e-1d6c-4f53-9d53-1f5f3f0f8a11",
    ] {
        let response = app
            .request(Method::GET, path, &token)
            .send()
            .await
            .expect("send");
        expect_problem(response, 404).await;
    }
    let response = app
        .request(Method::DELETE, MODELS, &token)
        .send()
        .await
        .expect("send");
    expect_problem(response, 405).await;
}

async fn a_stale_if_match_is_a_412_and_writes_nothing(backend: Backend) {
    let app = TestApp::on(backend).await;
    let token = app.modeler();
    let id = app.create(&token, "order").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("{MODELS}/{id}");
    let response = app
        .request(Method::PATCH, &path, &token)
        .json(&json!({"name": "B"}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.headers()["etag"], "\"2\"");
    let response = app
        .request(Method::PATCH, &path, &token)
        .header("If-Match", "\"1\"")
        .json(&json!({"name": "C"}))
        .send()
        .await
        .expect("send");
    expect_problem(response, 412).await;
    let response = app
        .request(Method::PATCH, &path, &token)
        .header("If-Match", "garbage")
        .json(&json!({"name": "C"}))
        .send()
        .await
        .expect("send");
    expect_problem(response, 400).await;
    assert_eq!(app.count_events("ProcessModel").await, 2);
    let current: serde_json::Value = app
        .request(Method::GET, &path, &token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(current["name"], "B");
}

async fn a_patch_with_nothing_to_change_is_a_400(backend: Backend) {
    let app = TestApp::on(backend).await;
    let token = app.modeler();
    let id = app.create(&token, "order").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let response = app
        .request(Method::PATCH, &format!("{MODELS}/{id}"), &token)
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    expect_problem(response, 400).await;
}

async fn every_rejection_is_recorded_with_who_what_and_why(backend: Backend) {
    let app = TestApp::on(backend).await;
    let token = app.modeler();
    let id = app.create(&token, "order").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let response = app
        .request(Method::POST, &format!("{MODELS}/{id}/publish"), &token)
        .header("x-request-id", "req-publish-1")
        .header("user-agent", "contract-test/1")
        .send()
        .await
        .expect("send");
    assert_eq!(
        response.headers()["x-request-id"],
        "req-publish-1",
        "request id echoed"
    );
    expect_problem(response, 422).await;
    let viewer = app.token("carol", "acme", &[]);
    let response = app
        .request(Method::POST, &format!("{MODELS}/{id}/archive"), &viewer)
        .send()
        .await
        .expect("send");
    expect_problem(response, 403).await;

    let rows = app.events_of_type("CommandRejection").await;
    assert_eq!(rows.len(), 2);
    let (payload, metadata) = &rows[0];
    assert_eq!(payload["command"], "PublishModel");
    assert_eq!(payload["reasonCode"], "invalid-model");
    assert_eq!(payload["resourceId"], id.as_str());
    assert_eq!(metadata["user_id"], "alice");
    assert_eq!(metadata["correlation_id"], "req-publish-1");
    assert_eq!(metadata["user_agent"], "contract-test/1");
    assert!(metadata["client_ip"].is_string());
    let (payload, metadata) = &rows[1];
    assert_eq!(payload["reasonCode"], "forbidden");
    assert_eq!(metadata["user_id"], "carol");
}
