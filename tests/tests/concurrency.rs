//! Concurrent writers: optimistic concurrency decides, nothing is lost, never a 500.

use contract_tests::{both_backends, Backend, TestApp};
use futures::future::join_all;
use reqwest::Method;
use serde_json::json;

both_backends!(
    with_the_same_if_match_exactly_one_of_16_writers_wins,
    without_if_match_all_16_writers_succeed_and_nothing_is_lost,
    concurrent_creates_of_one_key_yield_one_model
);

const WRITERS: usize = 16;

async fn with_the_same_if_match_exactly_one_of_16_writers_wins(backend: Backend) {
    let app = TestApp::on(backend).await;
    let token = app.modeler();
    let id = app.create(&token, "race").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/api/v1/process-models/{id}");
    let responses = join_all((0..WRITERS).map(|n| {
        app.request(Method::PATCH, &path, &token)
            .header("If-Match", "\"1\"")
            .json(&json!({"name": format!("writer {n}")}))
            .send()
    }))
    .await;
    let mut statuses: Vec<u16> = responses
        .into_iter()
        .map(|r| r.expect("send").status().as_u16())
        .collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        WRITERS - 1,
        "{statuses:?}"
    );
    assert_eq!(
        app.count_events("ProcessModel").await,
        2,
        "one create, one winning change"
    );
}

async fn without_if_match_all_16_writers_succeed_and_nothing_is_lost(backend: Backend) {
    let app = TestApp::on(backend).await;
    let token = app.modeler();
    let id = app.create(&token, "race").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/api/v1/process-models/{id}");
    let responses = join_all((0..WRITERS).map(|n| {
        app.request(Method::PATCH, &path, &token)
            .json(&json!({"description": format!("writer {n}")}))
            .send()
    }))
    .await;
    let statuses: Vec<u16> = responses
        .into_iter()
        .map(|r| r.expect("send").status().as_u16())
        .collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(app.count_events("ProcessModel").await, 1 + WRITERS as i64);
    let sequences = app.sequences_of(&id).await;
    assert_eq!(
        sequences,
        (1..=1 + WRITERS as i64).collect::<Vec<_>>(),
        "no gaps, no duplicates"
    );
}

async fn concurrent_creates_of_one_key_yield_one_model(backend: Backend) {
    let app = TestApp::on(backend).await;
    let token = app.modeler();
    let responses = join_all((0..WRITERS).map(|n| {
        app.request(Method::POST, "/api/v1/process-models", &token)
            .json(&json!({"key": "same", "name": format!("creator {n}")}))
            .send()
    }))
    .await;
    let statuses: Vec<u16> = responses
        .into_iter()
        .map(|r| r.expect("send").status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        WRITERS - 1,
        "{statuses:?}"
    );
    assert_eq!(app.count_events("ProcessModel").await, 1);
}
