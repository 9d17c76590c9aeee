//! Attacks on authentication and tenancy: crafted token headers, issuer and audience
//! checks, cross-tenant reads of every kind, and privilege escalation attempts.

use std::time::{SystemTime, UNIX_EPOCH};

use contract_tests::{both_backends, expect_problem, Backend, Options, TestApp, ADMIN, SECRET};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};

both_backends!(
    key_ids_and_key_urls_in_the_header_are_ignored,
    issuer_and_audience_are_enforced_when_configured,
    no_read_crosses_tenants,
    privileges_cannot_be_stretched,
);

const MODELS: &str = "/api/v1/process-models";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn claims(extra: Value) -> Value {
    let mut claims = json!({"sub": "mallory", "tenant_id": "acme",
                            "privileges": ["access-modeler"], "exp": now() + 600});
    if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            claims.insert(key.clone(), value.clone());
        }
    }
    claims
}

fn sign(header: &Header, secret: &[u8], claims: &Value) -> String {
    encode(header, claims, &EncodingKey::from_secret(secret)).expect("sign")
}

async fn list_status(app: &TestApp, token: &str) -> u16 {
    app.request(Method::GET, MODELS, token)
        .send()
        .await
        .expect("send")
        .status()
        .as_u16()
}

async fn key_ids_and_key_urls_in_the_header_are_ignored(backend: Backend) {
    let app = TestApp::on(backend).await;
    // Classic kid injections: a path to an empty or known file, SQL in the kid; and key
    // URLs an attacker controls. The verifier picks keys by algorithm only, so a token
    // signed with anything but the server's key fails, whatever the header says.
    for kid in ["../../../../../../dev/null", "' OR '1'='1", "0", ""] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.to_owned());
        for secret in [&b""[..], b"\0", b"attacker"] {
            let token = sign(&header, secret, &claims(json!({})));
            assert_eq!(list_status(&app, &token).await, 401, "kid {kid:?}");
        }
    }
    let mut header = Header::new(Algorithm::HS256);
    header.jku = Some("https://attacker.example/jwks.json".into());
    header.x5u = Some("https://attacker.example/cert.pem".into());
    let token = sign(&header, b"attacker", &claims(json!({})));
    assert_eq!(list_status(&app, &token).await, 401);
    // The same headers on a token signed with the real key change nothing either.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("../../../../../../dev/null".into());
    let token = sign(&header, SECRET.as_bytes(), &claims(json!({})));
    assert_eq!(list_status(&app, &token).await, 200);
}

async fn issuer_and_audience_are_enforced_when_configured(backend: Backend) {
    let app = TestApp::on_with(
        backend,
        Options {
            settings: vec![
                ("auth.issuer", json!("https://idp.example/realms/flowable")),
                ("auth.audience", json!("flowable-ui")),
            ],
            ..Options::default()
        },
    )
    .await;
    let header = Header::new(Algorithm::HS256);
    let iss = "https://idp.example/realms/flowable";
    let cases = [
        (json!({"iss": iss, "aud": "flowable-ui"}), 200),
        // Identity providers often send several audiences.
        (json!({"iss": iss, "aud": ["account", "flowable-ui"]}), 200),
        (json!({"iss": iss, "aud": "another-app"}), 401),
        (json!({"iss": iss, "aud": ["account"]}), 401),
        (json!({"iss": iss}), 401),
        (
            json!({"iss": "https://evil.example", "aud": "flowable-ui"}),
            401,
        ),
        (json!({"aud": "flowable-ui"}), 401),
    ];
    for (extra, expected) in cases {
        let token = sign(&header, SECRET.as_bytes(), &claims(extra.clone()));
        assert_eq!(list_status(&app, &token).await, expected, "{extra}");
    }
    // Tokens the server issues itself carry both.
    assert_eq!(list_status(&app, &app.modeler()).await, 200);
}

async fn no_read_crosses_tenants(backend: Backend) {
    let app = TestApp::on(backend).await;
    let owner = app.token("alice", "acme", &["access-modeler", ADMIN]);
    let created = app.create(&owner, "secret").await;
    let id = created["id"].as_str().expect("id").to_owned();
    let published = app
        .request(Method::POST, &format!("{MODELS}/{id}/publish"), &owner)
        .json(&json!({"comment": "v1"}))
        .send()
        .await
        .expect("publish");
    assert!(
        [200, 422].contains(&published.status().as_u16()),
        "{}",
        published.status()
    );
    let eve = app.token("eve", "globex", &["access-modeler", ADMIN]);
    app.create(&eve, "own").await;

    for path in [
        format!("{MODELS}/{id}"),
        format!("{MODELS}/{id}/events"),
        format!("{MODELS}/{id}/versions"),
        format!("{MODELS}/{id}/versions/1"),
    ] {
        let response = app
            .request(Method::GET, &path, &eve)
            .send()
            .await
            .expect("send");
        expect_problem(response, 404).await;
    }
    let get = |path: String| {
        let request = app.request(Method::GET, &path, &eve);
        async move {
            let response = request.send().await.expect("send");
            assert_eq!(response.status(), 200, "{path}");
            response.json::<Value>().await.expect("json")
        }
    };
    let list = get(format!("{MODELS}?size=1000")).await;
    assert_eq!(list["total"], 1, "only globex's model: {list}");
    assert_eq!(list["data"][0]["key"], "own");
    let filtered = get(format!("{MODELS}?key=secret")).await;
    assert_eq!(filtered["total"], 0);
    // The audit log of an admin of globex has globex's entries only, whatever the filter:
    // once its one entry (eve's create) is there, acme's rows, written before it, are
    // projected too and must still be invisible.
    let audit = app.audit_page(&eve, "?size=1000", 1).await;
    assert_eq!(audit["data"][0]["tenantId"], "globex", "{audit}");
    let audit = get(format!("/api/v1/audit-logs?size=1000&resourceId={id}")).await;
    assert_eq!(audit["total"], 0, "{audit}");
    // The owner still reads it: the 404s above are tenancy, not a missing model.
    let response = app
        .request(Method::GET, &format!("{MODELS}/{id}"), &owner)
        .send()
        .await
        .expect("owner");
    assert_eq!(response.status(), 200);
}

async fn privileges_cannot_be_stretched(backend: Backend) {
    let app = TestApp::on(backend).await;
    let modeler = app.modeler();
    // A modeler is not an admin.
    for (method, path) in [
        (Method::GET, "/api/v1/audit-logs"),
        (Method::GET, "/api/v1/admin/projections"),
        (
            Method::POST,
            "/api/v1/admin/projections/process_models/rebuild",
        ),
    ] {
        let response = app
            .request(method, path, &modeler)
            .send()
            .await
            .expect("send");
        expect_problem(response, 403).await;
    }
    let header = Header::new(Algorithm::HS256);
    // Look-alike privilege names grant nothing.
    for privileges in [
        json!([
            "access-admin ",
            "ACCESS-ADMIN",
            "access-admin\u{0}",
            "access-*"
        ]),
        json!(["access-modeler,access-admin"]),
    ] {
        let token = sign(
            &header,
            SECRET.as_bytes(),
            &claims(json!({"privileges": privileges})),
        );
        let response = app
            .request(Method::GET, "/api/v1/audit-logs", &token)
            .send()
            .await
            .expect("send");
        expect_problem(response, 403).await;
    }
    // Claims of the wrong shape or an empty tenant are not a valid token at all.
    for extra in [
        json!({"privileges": "access-admin"}),
        json!({"tenant_id": ""}),
        json!({"tenant_id": ["acme", "globex"]}),
        json!({"sub": ""}),
    ] {
        let token = sign(&header, SECRET.as_bytes(), &claims(extra.clone()));
        assert_eq!(list_status(&app, &token).await, 401, "{extra}");
    }
}
