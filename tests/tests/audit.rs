//! The audit log over HTTP: every accepted and every refused command, with who, what,
//! where and why; filters; tenant isolation; admin only.

use contract_tests::{both_backends, expect_problem, Backend, TestApp, ADMIN, MODELER};
use reqwest::Method;
use serde_json::{json, Value};

both_backends!(the_audit_log_is_for_admins_and_validates_its_filters);

#[tokio::test]
async fn accepted_and_refused_commands_are_audited() {
    let app = TestApp::spawn().await;
    let token = app.token("alice", "acme", &[MODELER, ADMIN]);
    let created: Value = app
        .request(Method::POST, "/api/v1/process-models", &token)
        .header("x-request-id", "audit-create")
        .header("user-agent", "audit-test/1")
        .json(&json!({"key": "audited", "name": "Audited"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    let response = app
        .request(
            Method::POST,
            &format!("/api/v1/process-models/{id}/publish"),
            &token,
        )
        .send()
        .await
        .expect("publish");
    expect_problem(response, 422).await;
    app.request(
        Method::PATCH,
        &format!("/api/v1/process-models/{id}"),
        &token,
    )
    .json(&json!({"name": "Audited 2"}))
    .send()
    .await
    .expect("patch");

    let page = app.audit_page(&token, "", 3).await;
    let rows = page["data"].as_array().expect("data");
    // Newest first.
    let actions: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["action"].as_str().expect("action"),
                r["result"].as_str().expect("result"),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("ChangeMetadata", "SUCCESS"),
            ("PublishModel", "FAILURE"),
            ("CreateModel", "SUCCESS")
        ]
    );
    let create = &rows[2];
    assert_eq!(create["userId"], "alice");
    assert_eq!(create["resourceId"], id.as_str());
    assert_eq!(create["correlationId"], "audit-create");
    assert_eq!(create["userAgent"], "audit-test/1");
    assert!(create["ipAddress"].is_string());
    assert!(create["hash"].as_str().is_some_and(|h| h.len() == 64));
    assert_eq!(rows[1]["details"]["reasonCode"], "invalid-model");
    assert_eq!(rows[0]["prevHash"], rows[1]["hash"], "rows are chained");

    let failures = app.audit_page(&token, "?result=FAILURE", 1).await;
    assert_eq!(failures["data"][0]["action"], "PublishModel");
    app.audit_page(&token, "?action=CreateModel&userId=alice", 1)
        .await;
    app.audit_page(&token, &format!("?resourceId={id}&size=1"), 3)
        .await;
    app.audit_page(&token, "?from=2999-01-01T00:00:00Z", 0)
        .await;

    // Another tenant's admin sees none of it.
    let other = app.token("bob", "globex", &[MODELER, ADMIN]);
    app.audit_page(&other, "", 0).await;

    let report = projections::audit::verify(app.pool(), None)
        .await
        .expect("verify");
    assert!(report.first_problem.is_none(), "{report:?}");
    assert_eq!(report.rows_checked, 3);
}

async fn the_audit_log_is_for_admins_and_validates_its_filters(backend: Backend) {
    let app = TestApp::on(backend).await;
    let response = app
        .request(Method::GET, "/api/v1/audit-logs", &app.modeler())
        .send()
        .await
        .expect("send");
    expect_problem(response, 403).await;
    let admin = app.token("root", "acme", &[ADMIN]);
    for bad in [
        "result=MAYBE",
        "from=yesterday",
        "size=5000",
        "start=-1",
        "from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "colour=red",
    ] {
        let response = app
            .request(Method::GET, &format!("/api/v1/audit-logs?{bad}"), &admin)
            .send()
            .await
            .expect("send");
        expect_problem(response, 400).await;
    }
}
