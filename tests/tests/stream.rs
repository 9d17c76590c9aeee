//! The live event stream (SSE): every event of the caller's tenant once, in order per
//! model, resuming with Last-Event-ID across the stored backlog / live seam (PostgreSQL +
//! NATS, or the embedded SQLite file + in-process bus).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use contract_tests::{both_backends, expect_problem, Backend, Options, TestApp};

both_backends!(
    resume_across_the_backlog_and_live_seam_loses_and_repeats_nothing,
    the_stream_refuses_unknown_positions,
);
use reqwest::Method;
use serde_json::{json, Value};

/// Reads SSE events (`id`, `event`, `data`) until `want` ids arrived or the deadline.
async fn read_events(
    mut response: reqwest::Response,
    want: usize,
    deadline: Duration,
) -> Vec<(i64, String, Value)> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    let until = Instant::now() + deadline;
    while events.len() < want {
        let remaining = until.saturating_duration_since(Instant::now());
        let Ok(Ok(Some(chunk))) = tokio::time::timeout(remaining, response.chunk()).await else {
            break;
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut id, mut kind, mut data) = (None, String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("event:") {
                    kind = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if let Some(id) = id {
                events.push((id, kind, serde_json::from_str(&data).unwrap_or(Value::Null)));
            }
        }
    }
    events
}

async fn create(app: &TestApp, token: &str, key: &str) {
    let response = app
        .request(Method::POST, "/api/v1/process-models", token)
        .json(&json!({"key": key, "name": key}))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201);
}

async fn resume_across_the_backlog_and_live_seam_loses_and_repeats_nothing(backend: Backend) {
    // NATS for PostgreSQL; the embedded backend has its in-process bus.
    let app = TestApp::on_with(
        backend,
        Options {
            nats: true,
            ..Options::default()
        },
    )
    .await;
    let token = app.modeler();
    let other = app.token("bob", "globex", &["access-modeler"]);
    for n in 0..5 {
        create(&app, &token, &format!("before{n}")).await;
    }
    create(&app, &other, "foreign").await;
    let first = app.tenant_positions("acme").await[0];

    let response = app
        .request(Method::GET, "/api/v1/events/stream", &token)
        .header("Last-Event-ID", first.to_string())
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/event-stream"));
    let writer = {
        let base = app.base.clone();
        let token = token.clone();
        let client = app.client.clone();
        tokio::spawn(async move {
            for n in 0..5 {
                client
                    .post(format!("{base}/api/v1/process-models"))
                    .bearer_auth(&token)
                    .json(&json!({"key": format!("during{n}"), "name": "during"}))
                    .send()
                    .await
                    .expect("create during");
            }
        })
    };
    // 4 backlog events after `first`, then 5 live ones.
    let events = read_events(response, 9, Duration::from_secs(20)).await;
    writer.await.expect("writer");
    let ids: Vec<i64> = events.iter().map(|(id, _, _)| *id).collect();
    let unique: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no duplicates: {ids:?}");
    let expected: BTreeSet<i64> = app
        .tenant_positions("acme")
        .await
        .into_iter()
        .filter(|p| *p != first)
        .collect();
    assert_eq!(
        unique, expected,
        "every event of the tenant after Last-Event-ID, nothing else"
    );
    for (_, kind, data) in &events {
        assert_eq!(kind, "ModelCreated");
        assert_eq!(data["tenantId"], "acme");
    }
    // Every event was fanned out once: the domain metrics count it by type and tenant.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = app
            .client
            .get(format!("{}/actuator/prometheus", app.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let counted = metrics.contains(r#"events_total{type="ModelCreated",tenant="acme"} 10"#)
            && metrics.contains(r#"events_total{type="ModelCreated",tenant="globex"} 1"#);
        if counted {
            assert!(metrics.contains("projection_lag_seconds{"), "{metrics}");
            break;
        }
        assert!(Instant::now() < deadline, "events not counted: {metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn the_stream_refuses_unknown_positions(backend: Backend) {
    let app = TestApp::on_with(
        backend,
        Options {
            nats: true,
            ..Options::default()
        },
    )
    .await;
    let response = app
        .request(Method::GET, "/api/v1/events/stream", &app.modeler())
        .header("Last-Event-ID", "999999")
        .send()
        .await
        .expect("stream");
    expect_problem(response, 400).await;
    let response = app
        .request(Method::GET, "/api/v1/events/stream", &app.modeler())
        .header("Last-Event-ID", "soon")
        .send()
        .await
        .expect("stream");
    expect_problem(response, 400).await;
}

#[tokio::test]
async fn on_postgresql_the_stream_needs_nats() {
    let without_nats = TestApp::spawn().await;
    let response = without_nats
        .request(
            Method::GET,
            "/api/v1/events/stream",
            &without_nats.modeler(),
        )
        .send()
        .await
        .expect("stream");
    expect_problem(response, 503).await;
}
