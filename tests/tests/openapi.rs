//! The OpenAPI document as served: it lists exactly the operations the router answers, each
//! secured operation names the privilege that the server really demands, it is open to
//! anonymous callers, and Swagger UI is served from the binary.

use std::collections::BTreeSet;

use api::http::openapi::{DOCS_PATH, PRIVILEGE_EXTENSION, SPEC_PATH};
use contract_tests::{Backend, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

/// The methods probed on every route (HEAD and OPTIONS are axum's automatic extras).
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The path templates of the router the server runs, documented or not. axum has no API to
/// list routes, so they are read from its `Debug` form, where the path router's node shows
/// `RouteId(n): "/path"`; the fallback router (which follows it) is left out.
fn router_paths() -> BTreeSet<String> {
    let limits = api::limits::LimitSettings::default();
    let debug = format!("{:?}", api::http::routes(&limits));
    let path_router = debug
        .split("fallback_router")
        .next()
        .unwrap_or_default()
        .to_owned();
    let pattern = regex::Regex::new(r#"RouteId\(\d+\): "([^"]*)""#).expect("regex");
    let paths: BTreeSet<String> = pattern
        .captures_iter(&path_router)
        .map(|c| c[1].to_owned())
        .filter(|p| p != SPEC_PATH && !p.starts_with(DOCS_PATH))
        .collect();
    assert!(
        paths.len() > 10,
        "found only {paths:?} in the router's Debug output: did axum change its format?"
    );
    paths
}

/// A concrete path for a template (a random model id, version 1, an unknown projection).
fn concrete(template: &str) -> String {
    let model = uuid::Uuid::new_v4().to_string();
    template
        .replace("{id}", &model)
        .replace("{version}", "1")
        .replace("{name}", "no-such-projection")
}

async fn document(app: &TestApp) -> Value {
    let response = app
        .client
        .get(format!("{}{SPEC_PATH}", app.base))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200, "the document needs no token");
    response.json().await.expect("the document is JSON")
}

/// `(METHOD, path template)` of every operation in the document.
fn documented(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in METHODS.iter().chain(&["HEAD", "OPTIONS", "TRACE"]) {
            if item.get(method.to_ascii_lowercase()).is_some() {
                operations.insert(((*method).to_owned(), path.clone()));
            }
        }
    }
    operations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_documented_and_every_operation_is_routed() {
    let app = TestApp::on(Backend::Sqlite).await;
    let document = document(&app).await;
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "OpenAPI 3.1"
    );
    // Probe each route of the router with each method, anonymously: a method it does not
    // route gets the 405 fallback; anything else (401, 200, 503...) means it is routed.
    let mut routed = BTreeSet::new();
    for template in router_paths() {
        for method in METHODS {
            let response = app
                .client
                .request(
                    Method::from_bytes(method.as_bytes()).expect("method"),
                    format!("{}{}", app.base, concrete(&template)),
                )
                .send()
                .await
                .expect("send");
            if response.status() != 405 {
                routed.insert((method.to_owned(), template.clone()));
            }
        }
    }
    let documented = documented(&document);
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the OpenAPI document: {undocumented:?} (register handlers with \
         their #[utoipa::path] in api::http::api_routes)"
    );
    assert!(
        unrouted.is_empty(),
        "documented operations the router does not serve: {unrouted:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_privileges_are_the_ones_enforced() {
    let app = TestApp::on(Backend::Sqlite).await;
    let document = document(&app).await;
    let nobody = app.token("nobody", "acme", &[]);
    let mut checked = 0;
    for (method, template) in documented(&document) {
        let operation = &document["paths"][&template][method.to_ascii_lowercase()];
        let Some(privilege) = operation[PRIVILEGE_EXTENSION].as_str() else {
            assert!(
                !template.starts_with("/api/"),
                "{method} {template} names no {PRIVILEGE_EXTENSION}"
            );
            continue;
        };
        let responses = operation["responses"].as_object().expect("responses");
        for status in ["401", "403"] {
            assert!(
                responses.contains_key(status),
                "{method} {template} documents no {status}"
            );
        }
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let path = concrete(&template);
        let send = |token: String| {
            let request = app.request(method.clone(), &path, &token);
            let request = if method == Method::GET {
                request
            } else {
                request.json(&json!({}))
            };
            request.send()
        };
        // Without the privilege: 403 naming it.
        let body =
            contract_tests::expect_problem(send(nobody.clone()).await.expect("send"), 403).await;
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains(privilege)),
            "{method} {template}: {body}"
        );
        // With exactly that privilege: past the privilege check.
        let holder = app.token("holder", "acme", &[privilege]);
        let response = send(holder).await.expect("send");
        assert_ne!(
            response.status(),
            403,
            "{method} {template} with {privilege}"
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} secured operations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_documented_as_problem_json() {
    let app = TestApp::on(Backend::Sqlite).await;
    let document = document(&app).await;
    for (name, response) in document["components"]["responses"]
        .as_object()
        .expect("reusable responses")
    {
        let schema = &response["content"]["application/problem+json"]["schema"]["$ref"];
        assert_eq!(schema, "#/components/schemas/Problem", "{name}");
    }
    let bearer = &document["components"]["securitySchemes"]["bearer"];
    assert_eq!(bearer["type"], "http");
    assert_eq!(bearer["scheme"], "bearer");
    assert_eq!(bearer["bearerFormat"], "JWT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_is_served_from_the_binary() {
    let app = TestApp::on(Backend::Sqlite).await;
    let page = app
        .client
        .get(format!("{}{DOCS_PATH}/", app.base))
        .send()
        .await
        .expect("send");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "{html}");
    // The assets come with the page, not from a CDN.
    assert!(
        !html.contains("://cdn") && !html.contains("unpkg.com"),
        "{html}"
    );
    for asset in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-initializer.js",
    ] {
        let response = app
            .client
            .get(format!("{}{DOCS_PATH}/{asset}", app.base))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200, "{asset}");
        let text = response.text().await.expect("asset");
        if asset == "swagger-initializer.js" {
            assert!(
                text.contains(SPEC_PATH),
                "the UI loads our document: {text}"
            );
        }
    }
}
