//! The server can terminate TLS itself (rustls) when not behind an ingress.

use contract_tests::{Options, TestApp};
use reqwest::Method;

#[tokio::test]
async fn serves_https_with_the_configured_certificate() {
    let dir = std::env::temp_dir().join(format!("fui-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("self-signed certificate");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");

    let app = TestApp::spawn_with(Options {
        tls: Some((cert.display().to_string(), key.display().to_string())),
        ..Options::default()
    })
    .await;
    assert!(app.base.starts_with("https://"));
    let response = app
        .client
        .get(format!("{}/actuator/health/liveness", app.base))
        .send()
        .await
        .expect("https request");
    assert_eq!(response.status(), 200);
    let token = app.modeler();
    app.create(&token, "secure").await;
    let response = app
        .request(Method::GET, "/api/v1/process-models", &token)
        .send()
        .await
        .expect("list");
    assert_eq!(response.status(), 200);

    // Plain HTTP on the TLS port gets nothing useful.
    let plain = reqwest::Client::new()
        .get(app.base.replacen("https://", "http://", 1) + "/actuator/health/liveness")
        .send()
        .await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
    std::fs::remove_dir_all(&dir).ok();
}
