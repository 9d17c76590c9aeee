//! A model's whole lifecycle over HTTP, with the status codes a client sees.

use contract_tests::{both_backends, expect_problem, shared_fixture, Backend, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

both_backends!(
    a_model_goes_through_its_whole_lifecycle,
    a_duplicate_key_in_one_tenant_is_a_conflict_but_other_tenants_may_use_it,
    every_valid_shared_fixture_publishes
);

fn valid_model() -> Value {
    json!({
        "resourceId": "canvas",
        "stencil": {"id": "BPMNDiagram"},
        "properties": {"process_id": "order"},
        "childShapes": [
            {"resourceId": "start", "stencil": {"id": "StartNoneEvent"}, "properties": {},
             "childShapes": [], "outgoing": [{"resourceId": "f1"}]},
            {"resourceId": "f1", "stencil": {"id": "SequenceFlow"}, "properties": {},
             "childShapes": [], "outgoing": [{"resourceId": "end"}], "target": {"resourceId": "end"}},
            {"resourceId": "end", "stencil": {"id": "EndNoneEvent"}, "properties": {},
             "childShapes": [], "outgoing": []}
        ]
    })
}

async fn a_model_goes_through_its_whole_lifecycle(backend: Backend) {
    let app = TestApp::on(backend).await;
    let token = app.modeler();

    // Create: 201, Location, ETag, DRAFT v1.
    let response = app
        .request(Method::POST, "/api/v1/process-models", &token)
        .json(
            &json!({"key": "order", "name": "Order", "category": "sales", "description": "Orders"}),
        )
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["etag"], "\"1\"");
    let location = response.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let created: Value = response.json().await.expect("json");
    assert_eq!(created["status"], "DRAFT");
    assert_eq!(created["version"], 1);
    assert_eq!(created["createdBy"], "alice");
    assert_eq!(created["tenantId"], "acme");
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(location, format!("/api/v1/process-models/{id}"));
    let path = |suffix: &str| format!("/api/v1/process-models/{id}{suffix}");

    // Read it back.
    let response = app
        .request(Method::GET, &path(""), &token)
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"1\"");

    // Rename (draft edit keeps the version).
    let response = app
        .request(Method::PATCH, &path(""), &token)
        .header("If-Match", "\"1\"")
        .json(&json!({"name": "Order handling", "category": null}))
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        (
            body["name"].as_str(),
            body["category"].is_null(),
            body["version"].as_u64()
        ),
        (Some("Order handling"), true, Some(1))
    );

    // Publishing the empty canvas fails validation: 422 with the findings.
    let response = app
        .request(Method::POST, &path("/publish"), &token)
        .send()
        .await
        .expect("publish");
    let problem = expect_problem(response, 422).await;
    assert!(problem["validation"]["errors"]
        .as_array()
        .is_some_and(|e| !e.is_empty()));

    // Replace the JSON with a valid model and publish.
    let response = app
        .request(Method::PUT, &path("/model"), &token)
        .json(&valid_model())
        .send()
        .await
        .expect("put");
    assert_eq!(response.status(), 200);
    let response = app
        .request(Method::POST, &path("/publish"), &token)
        .json(&json!({"comment": "first release"}))
        .send()
        .await
        .expect("publish");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        (body["status"].as_str(), body["version"].as_u64()),
        (Some("PUBLISHED"), Some(1))
    );

    // Publishing again is an illegal transition.
    let response = app
        .request(Method::POST, &path("/publish"), &token)
        .send()
        .await
        .expect("publish");
    expect_problem(response, 409).await;

    // Editing a published model opens version 2 as a draft.
    let response = app
        .request(Method::PATCH, &path(""), &token)
        .json(&json!({"description": "v2 work"}))
        .send()
        .await
        .expect("patch");
    assert!(
        response.headers().get("x-read-your-writes").is_none(),
        "the read table had the edit when it answered"
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        (body["status"].as_str(), body["version"].as_u64()),
        (Some("DRAFT"), Some(2))
    );
    // The projector neither reads nor rewrites the editor JSON of an edit that leaves it
    // alone: the answer, the table and the frozen version all still have it.
    assert_eq!(body["modelJson"], valid_model(), "the edit's answer");
    for (what, suffix) in [("the model", ""), ("version 1", "/versions/1")] {
        let response = app
            .request(Method::GET, &path(suffix), &token)
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["modelJson"], valid_model(), "{what}");
    }

    // Archive; then every edit is refused with 409.
    let response = app
        .request(Method::POST, &path("/archive"), &token)
        .send()
        .await
        .expect("archive");
    assert_eq!(response.status(), 200);
    let response = app
        .request(Method::PUT, &path("/model"), &token)
        .json(&valid_model())
        .send()
        .await
        .expect("put");
    expect_problem(response, 409).await;
    let response = app
        .request(Method::POST, &path("/archive"), &token)
        .send()
        .await
        .expect("archive");
    expect_problem(response, 409).await;

    // Restore version 1's content as version 3.
    let response = app
        .request(Method::POST, &path("/restore"), &token)
        .json(&json!({"version": 1}))
        .send()
        .await
        .expect("restore");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        (body["status"].as_str(), body["version"].as_u64()),
        (Some("DRAFT"), Some(3))
    );
    assert_eq!(body["modelJson"], valid_model());

    // Restoring a version that was never published names the field.
    let response = app
        .request(Method::POST, &path("/restore"), &token)
        .json(&json!({"version": 9}))
        .send()
        .await
        .expect("restore");
    let problem = expect_problem(response, 400).await;
    assert!(problem["errors"]["version"].is_array());

    // The history has every accepted change, each with its metadata.
    let response = app
        .request(Method::GET, &path("/events"), &token)
        .send()
        .await
        .expect("events");
    assert_eq!(response.status(), 200);
    let history: Value = response.json().await.expect("json");
    let types: Vec<&str> = history["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["eventType"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        [
            "ModelCreated",
            "MetadataChanged",
            "ModelJsonReplaced",
            "ModelPublished",
            "DraftVersionOpened",
            "MetadataChanged",
            "ModelArchived",
            "ModelRestored"
        ]
    );
    for event in history["data"].as_array().expect("data") {
        let meta = &event["metadata"];
        assert_eq!(meta["user_id"], "alice");
        assert_eq!(meta["tenant_id"], "acme");
        assert!(meta["correlation_id"]
            .as_str()
            .is_some_and(|c| !c.is_empty()));
        assert!(meta["time"].is_string() && meta["client_ip"].is_string());
    }
}

async fn a_duplicate_key_in_one_tenant_is_a_conflict_but_other_tenants_may_use_it(
    backend: Backend,
) {
    let app = TestApp::on(backend).await;
    app.create(&app.modeler(), "invoice").await;
    let response = app
        .request(Method::POST, "/api/v1/process-models", &app.modeler())
        .json(&json!({"key": "invoice", "name": "Again"}))
        .send()
        .await
        .expect("create");
    expect_problem(response, 409).await;
    let other = app.token("bob", "globex", &["access-modeler"]);
    app.create(&other, "invoice").await;
}

async fn every_valid_shared_fixture_publishes(backend: Backend) {
    let app = TestApp::on(backend).await;
    let token = app.modeler();
    let names = [
        "test.usertaskmodel.json",
        "test.simplemodel.json",
        "test.flownodemodel.json",
        "test.subprocessmodel.json",
        "test.boundaryeventmodel.json",
        "test.completemodel.json",
        "test.poolmodel.json",
        "test.boundaryeventassociationmodel.json",
        "test.eventsubprocesssequenceflow.json",
    ];
    for (n, name) in names.iter().enumerate() {
        let Some(model) = shared_fixture(name) else {
            return;
        };
        let response = app
            .request(Method::POST, "/api/v1/process-models", &token)
            .json(&json!({"key": format!("fixture{n}"), "name": name, "modelJson": model}))
            .send()
            .await
            .expect("create");
        assert_eq!(response.status(), 201, "{name}");
        let id = response.json::<Value>().await.expect("json")["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let response = app
            .request(
                Method::POST,
                &format!("/api/v1/process-models/{id}/publish"),
                &token,
            )
            .send()
            .await
            .expect("publish");
        assert_eq!(response.status(), 200, "{name} publishes");
    }
    let Some(throw) = shared_fixture("test.throwevent.json") else {
        return;
    };
    let response = app
        .request(Method::POST, "/api/v1/process-models/validate", &token)
        .json(&throw)
        .send()
        .await
        .expect("validate");
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.expect("json");
    assert_eq!(report["valid"], false);
    assert_eq!(report["errors"][0]["rule"], "missing-start-event");
}
