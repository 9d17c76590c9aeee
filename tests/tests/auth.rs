//! Authentication and authorisation: bad tokens are 401, missing privileges 403, other
//! tenants' models 404.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use contract_tests::{both_backends, expect_problem, Backend, Options, TestApp, SECRET};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::json;

both_backends!(
    missing_malformed_and_forged_tokens_are_401,
    rs256_tokens_verify_and_hs_rs_confusion_is_refused,
    a_caller_without_the_modeler_privilege_is_403,
    another_tenants_model_is_404_on_every_route
);

const MODELS: &str = "/api/v1/process-models";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn claims(exp: u64) -> serde_json::Value {
    json!({"sub": "mallory", "tenant_id": "acme", "privileges": ["access-modeler"], "exp": exp})
}

fn hs256(secret: &[u8], claims: &serde_json::Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

async fn status_with(app: &TestApp, token: &str) -> reqwest::Response {
    app.request(Method::POST, MODELS, token)
        .json(&json!({"key": "k", "name": "K"}))
        .send()
        .await
        .expect("send")
}

fn b64(value: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

async fn missing_malformed_and_forged_tokens_are_401(backend: Backend) {
    let app = TestApp::on(backend).await;
    let response = app
        .client
        .post(format!("{}{MODELS}", app.base))
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    let response_headers = response.headers().clone();
    expect_problem(response, 401).await;
    assert_eq!(response_headers["www-authenticate"], "Bearer");

    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims(now() + 600))
    );
    let wrong_secret = hs256(b"another-secret-another-secret-0000", &claims(now() + 600));
    let expired = hs256(SECRET.as_bytes(), &claims(now() - 3600));
    let not_yet = hs256(
        SECRET.as_bytes(),
        &json!({"sub": "m", "tenant_id": "acme", "exp": now() + 7200, "nbf": now() + 3600}),
    );
    let no_tenant = hs256(SECRET.as_bytes(), &json!({"sub": "m", "exp": now() + 600}));
    for token in [
        unsigned.as_str(),
        &wrong_secret,
        &expired,
        &not_yet,
        &no_tenant,
        "not-a-jwt",
    ] {
        expect_problem(status_with(&app, token).await, 401).await;
    }
    assert_eq!(app.count_events("ProcessModel").await, 0);
}

async fn rs256_tokens_verify_and_hs_rs_confusion_is_refused(backend: Backend) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let app = TestApp::on_with(
        backend,
        Options {
            public_key_path: Some(dir.join("test-rs256-public.pem").display().to_string()),
            ..Options::default()
        },
    )
    .await;
    let private = std::fs::read(dir.join("test-rs256-private.pem")).expect("private key");
    let rs = encode(
        &Header::new(Algorithm::RS256),
        &claims(now() + 600),
        &EncodingKey::from_rsa_pem(&private).expect("rsa key"),
    )
    .expect("sign");
    assert_eq!(status_with(&app, &rs).await.status(), 201);

    // HS256 "signed" with the public key as the HMAC secret: the classic confusion attack.
    let public = std::fs::read(dir.join("test-rs256-public.pem")).expect("public key");
    let confused = hs256(&public, &claims(now() + 600));
    expect_problem(status_with(&app, &confused).await, 401).await;
}

async fn a_caller_without_the_modeler_privilege_is_403(backend: Backend) {
    let app = TestApp::on(backend).await;
    let token = app.token("viewer", "acme", &["something-else"]);
    expect_problem(status_with(&app, &token).await, 403).await;
    let response = app
        .request(
            Method::GET,
            &format!("{MODELS}/0b9a3d7e-1d6c-4f53-9d53-1f5f3f0f8a11"),
            &token,
        )
        .send()
        .await
        .expect("send");
    expect_problem(response, 403).await;
}

async fn another_tenants_model_is_404_on_every_route(backend: Backend) {
    let app = TestApp::on(backend).await;
    let owner = app.modeler();
    let id = app.create(&owner, "secret").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let intruder = app.token("eve", "globex", &["access-modeler", "access-admin"]);
    let path = |suffix: &str| format!("{MODELS}/{id}{suffix}");
    let attempts = [
        (Method::GET, path(""), None),
        (Method::GET, path("/events"), None),
        (Method::PATCH, path(""), Some(json!({"name": "pwned"}))),
        (
            Method::PUT,
            path("/model"),
            Some(json!({"stencil": {"id": "BPMNDiagram"}, "childShapes": []})),
        ),
        (Method::POST, path("/publish"), None),
        (Method::POST, path("/archive"), None),
        (Method::POST, path("/restore"), Some(json!({}))),
    ];
    for (method, path, body) in attempts {
        let mut request = app.request(method.clone(), &path, &intruder);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send");
        expect_problem(response, 404).await;
    }
    let events: i64 = app.count_events("ProcessModel").await;
    assert_eq!(events, 1, "the intruder changed nothing");
}
