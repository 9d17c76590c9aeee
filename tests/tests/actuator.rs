//! Health, metrics and info endpoints in the shapes Actuator clients expect.

use contract_tests::{both_backends, Backend, TestApp};
use reqwest::Method;
use serde_json::Value;

both_backends!(
    health_endpoints_report_up,
    health_details_are_for_admins_only,
    prometheus_exposes_request_histogram_by_route_template,
    info_names_version_and_profile
);

async fn health_endpoints_report_up(backend: Backend) {
    let app = TestApp::on(backend).await;
    for path in [
        "/actuator/health",
        "/actuator/health/liveness",
        "/actuator/health/readiness",
    ] {
        let response = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["status"], "UP", "{path}");
    }
}

async fn health_details_are_for_admins_only(backend: Backend) {
    let app = TestApp::on(backend).await;
    let anonymous: Value = app
        .client
        .get(format!("{}/actuator/health", app.base))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(anonymous, serde_json::json!({"status": "UP"}));
    let admin = app.token("ops", "acme", &[contract_tests::ADMIN]);
    let detailed: Value = app
        .request(Method::GET, "/actuator/health", &admin)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(detailed["components"]["db"]["status"], "UP");
    assert_eq!(detailed["components"]["projections"]["status"], "UP");
    assert!(detailed["components"]["projections"]["details"]["lag"].is_i64());
}

async fn prometheus_exposes_request_histogram_by_route_template(backend: Backend) {
    let app = TestApp::on(backend).await;
    let token = app.modeler();
    let id = app.create(&token, "metered").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // The edit starts from the state the create left in the write side's cache.
    let edited = app
        .request(
            Method::PATCH,
            &format!("/api/v1/process-models/{id}"),
            &token,
        )
        .json(&serde_json::json!({"name": "Metered"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(edited.status(), 200);
    let response = app
        .request(Method::GET, &format!("/api/v1/process-models/{id}"), &token)
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 200);
    let text = app
        .client
        .get(format!("{}/actuator/prometheus", app.base))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    for expected in [
        "http_server_requests_seconds_bucket",
        "uri=\"/api/v1/process-models/{id}\"",
        "outcome=\"SUCCESS\"",
        "eventstore_appends_total 2",
        // The create appended on a stream assumed new, the edit on the state it left.
        "command_state_cache_total{result=\"miss\"} 0",
        "command_state_cache_total{result=\"hit\"} 2",
        "command_state_cache_total{result=\"stale\"} 0",
        "process_resident_memory_bytes",
        "db_pool_connections_idle",
        "projection_lag_events{projection=\"process_models\"}",
        "projection_lag_events{projection=\"audit_logs\"}",
        // Both commands waited for the read tables (the test profile's timeout is > 0).
        "read_your_writes_wait_seconds_count 2",
        "read_your_writes_timeouts_total 0",
    ] {
        assert!(text.contains(expected), "missing {expected} in:\n{text}");
    }
    assert!(!text.contains(&id), "ids never become label values");
    if backend == Backend::Postgres {
        // The projector runners' steps: both commands' events were applied before they
        // answered, in one step or two.
        let models = |metric: &str| {
            let prefix = format!("{metric}{{projection=\"process_models\"}} ");
            text.lines()
                .find_map(|line| line.strip_prefix(&prefix))
                .and_then(|value| value.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no {prefix}in:\n{text}"))
        };
        assert_eq!(models("projection_events_applied_total"), 2.0);
        let steps = models("projection_steps_total");
        assert!((1.0..=2.0).contains(&steps), "{steps} steps");
        assert!(models("projection_step_seconds_total") > 0.0);
        assert!(text.contains("projection_steps_total{projection=\"audit_logs\"}"));
    }
}

async fn info_names_version_and_profile(backend: Backend) {
    let app = TestApp::on(backend).await;
    let body: Value = app
        .client
        .get(format!("{}/actuator/info", app.base))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(body["build"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["build"]["profile"], "test");
}
