//! Abuse limits: command rate limits (429 + Retry-After), the live-stream cap per tenant,
//! per-route body limits, the header limit, and rate-limited rejection records.

use api::limits::LimitSettings;
use contract_tests::{both_backends, expect_problem, Backend, Options, TestApp};
use reqwest::Method;
use serde_json::json;

both_backends!(
    a_client_over_its_command_rate_gets_429_with_retry_after,
    live_streams_are_capped_per_tenant,
    small_routes_take_small_bodies_and_headers_are_bounded,
    a_flood_of_refused_commands_is_recorded_only_up_to_a_rate,
);

const MODELS: &str = "/api/v1/process-models";

fn tight() -> LimitSettings {
    LimitSettings {
        commands_per_client_per_sec: 1,
        commands_per_client_burst: 3,
        streams_per_tenant: 1,
        rejection_records_per_client_per_sec: 1,
        rejection_records_per_client_burst: 2,
        ..LimitSettings::default()
    }
}

async fn tight_app(backend: Backend) -> TestApp {
    TestApp::on_with(
        backend,
        Options {
            limits: Some(tight()),
            ..Options::default()
        },
    )
    .await
}

async fn a_client_over_its_command_rate_gets_429_with_retry_after(backend: Backend) {
    let app = tight_app(backend).await;
    let alice = app.modeler();
    // Six at once against a burst of three and one per second: at least two are throttled,
    // however slow the machine.
    let sends = (0..6).map(|n| {
        app.request(Method::POST, MODELS, &alice)
            .json(&json!({"key": format!("m{n}"), "name": "M"}))
            .send()
    });
    let responses: Vec<reqwest::Response> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| r.expect("send"))
        .collect();
    let created = responses.iter().filter(|r| r.status() == 201).count();
    let mut throttled: Vec<reqwest::Response> = responses
        .into_iter()
        .filter(|r| r.status() == 429)
        .collect();
    assert!(created >= 3, "the burst goes through: {created}");
    assert_eq!(created + throttled.len(), 6, "nothing else");
    assert!(throttled.len() >= 2, "{}", throttled.len());
    let response = throttled.remove(0);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let problem = expect_problem(response, 429).await;
    assert!(problem["detail"]
        .as_str()
        .expect("detail")
        .contains("client"));
    // Throttled commands wrote nothing, and another client of the tenant is not throttled.
    assert_eq!(app.count_events("ProcessModel").await, created as i64);
    let bob = app.token("bob", "acme", &["access-modeler"]);
    app.create(&bob, "for-bob").await;
}

async fn live_streams_are_capped_per_tenant(backend: Backend) {
    let app = TestApp::on_with(
        backend,
        Options {
            limits: Some(tight()),
            nats: true,
            ..Options::default()
        },
    )
    .await;
    let open = || {
        app.request(Method::GET, "/api/v1/events/stream", &app.modeler())
            .send()
    };
    let first = open().await.expect("first");
    assert_eq!(first.status(), 200);
    let second = open().await.expect("second");
    assert!(second.headers().contains_key("retry-after"));
    expect_problem(second, 429).await;
    let other_tenant = app
        .request(
            Method::GET,
            "/api/v1/events/stream",
            &app.token("carol", "globex", &["access-modeler"]),
        )
        .send()
        .await
        .expect("other tenant");
    assert_eq!(other_tenant.status(), 200);
    // Closing the first stream frees its slot.
    drop(first);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let again = open().await.expect("again");
        if again.status() == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn small_routes_take_small_bodies_and_headers_are_bounded(backend: Backend) {
    let app = TestApp::on(backend).await;
    let token = app.modeler();
    let created = app.create(&token, "big").await;
    let id = created["id"].as_str().expect("id");
    let limit = LimitSettings::default().small_body_limit_bytes;
    // A metadata change is small: its limit is far below the editor JSON routes'.
    let response = app
        .request(Method::PATCH, &format!("{MODELS}/{id}"), &token)
        .json(&json!({"description": "x".repeat(limit + 1)}))
        .send()
        .await
        .expect("patch");
    let problem = expect_problem(response, 413).await;
    assert!(problem["detail"]
        .as_str()
        .expect("detail")
        .contains(&limit.to_string()));
    // The same size is fine where editor JSON travels.
    let response = app
        .request(Method::PUT, &format!("{MODELS}/{id}/model"), &token)
        .json(
            &json!({"resourceId": "canvas", "stencil": {"id": "BPMNDiagram"},
                      "properties": {"documentation": "x".repeat(limit + 1)}, "childShapes": []}),
        )
        .send()
        .await
        .expect("put");
    assert_eq!(response.status(), 200);

    let response = app
        .request(Method::GET, MODELS, &token)
        .header(
            "x-padding",
            "p".repeat(LimitSettings::default().max_header_bytes),
        )
        .send()
        .await
        .expect("get");
    expect_problem(response, 431).await;
}

async fn a_flood_of_refused_commands_is_recorded_only_up_to_a_rate(backend: Backend) {
    let app = tight_app(backend).await;
    let mallory = app.token("mallory", "acme", &["access-modeler"]);
    for _ in 0..6 {
        let response = app
            .request(Method::POST, MODELS, &mallory)
            .json(&json!({"key": "not a key!", "name": "x"}))
            .send()
            .await
            .expect("send");
        expect_problem(response, 400).await;
    }
    // Every refusal is answered, but only the burst of them reaches the event store.
    assert_eq!(app.count_events("CommandRejection").await, 2);
    let metrics = app
        .client
        .get(format!("{}/actuator/prometheus", app.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("commands_rejected_unrecorded_total 4"),
        "{metrics}"
    );
}
