//! Test support: the real application on a fresh database (PostgreSQL, or an embedded
//! SQLite file), on a free port, with tokens signed by its own key. Dropping a [`TestApp`]
//! stops it and drops its database. [`both_backends!`] runs one contract test on each.

use std::path::PathBuf;
use std::time::Duration;

use api::auth::Authenticator;
use api::{Application, Profile, Settings};
use figment::providers::Serialized;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use sqlx::Connection;

/// The HS256 secret every test app uses.
pub const SECRET: &str = "contract-tests-secret-0123456789abcdef";
pub const MODELER: &str = "access-modeler";
pub const ADMIN: &str = "access-admin";

/// Where the test databases live (`TEST_DATABASE_URL`, default: the local server).
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// The storage backend a test app runs on (DESIGN §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh PostgreSQL database on the test server.
    Postgres,
    /// A fresh embedded SQLite file in a temporary directory.
    Sqlite,
}

/// Where a test app keeps its data.
enum Store {
    Postgres {
        pool: sqlx::PgPool,
        database: String,
    },
    Sqlite {
        pool: sqlx::SqlitePool,
        dir: PathBuf,
    },
}

/// A running application on its own database.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub auth: Authenticator,
    pub backend: Backend,
    store: Store,
    /// The JetStream stream of this test (deleted on drop).
    pub nats_stream: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The NATS server of the tests (`TEST_NATS_URL`, default: the local server).
pub fn nats_url() -> String {
    std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// Options for [`TestApp::spawn_with`].
pub struct Options {
    pub body_limit_bytes: usize,
    pub public_key_path: Option<String>,
    /// PEM certificate and key paths: the app serves HTTPS.
    pub tls: Option<(String, String)>,
    /// Relay events to the local NATS under a stream and subject prefix of this test's own.
    pub nats: bool,
    /// Abuse limits; `None`: the defaults (on).
    pub limits: Option<api::limits::LimitSettings>,
    /// Any other settings, by dotted key (e.g. `auth.audience`).
    pub settings: Vec<(&'static str, Value)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            body_limit_bytes: 10 * 1024 * 1024,
            public_key_path: None,
            tls: None,
            nats: false,
            limits: None,
            settings: Vec::new(),
        }
    }
}

/// Runs contract tests once per backend: for each `name` (an
/// `async fn name(backend: Backend)` beside the macro call), the tests `name::postgres`
/// and `name::sqlite`. The body spawns its app with [`TestApp::on`] or [`TestApp::on_with`].
///
/// ```ignore
/// both_backends!(creates_a_model);
///
/// async fn creates_a_model(backend: Backend) {
///     let app = TestApp::on(backend).await;
/// }
/// ```
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    super::$name($crate::Backend::Postgres).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    super::$name($crate::Backend::Sqlite).await
                }
            }
        )*
    };
}

impl TestApp {
    /// The app on PostgreSQL.
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    /// The app on PostgreSQL, with `options`.
    pub async fn spawn_with(options: Options) -> Self {
        Self::on_with(Backend::Postgres, options).await
    }

    /// The app on `backend`.
    pub async fn on(backend: Backend) -> Self {
        Self::on_with(backend, Options::default()).await
    }

    /// The app on `backend`, with `options`.
    pub async fn on_with(backend: Backend, options: Options) -> Self {
        match backend {
            Backend::Postgres => {
                let database = format!("fui_test_{}", uuid::Uuid::new_v4().simple());
                Self::spawn_on(database, options).await
            }
            Backend::Sqlite => {
                // The embedded backend always uses its in-process bus.
                let options = Options {
                    nats: false,
                    ..options
                };
                let dir = std::env::temp_dir()
                    .join(format!("fui-test-{}", uuid::Uuid::new_v4().simple()));
                let path = dir.join("flowable-ui.db");
                let figment = Settings::figment(Profile::Test)
                    .merge(Serialized::default("database.sqlite_path", &path))
                    .merge(Serialized::default("data_dir", &dir));
                let (app, parts) = Self::start(figment, options).await;
                let pool = sqlx::sqlite::SqlitePoolOptions::new()
                    .connect_with(
                        sqlx::sqlite::SqliteConnectOptions::new()
                            .filename(&path)
                            .read_only(true),
                    )
                    .await
                    .expect("test pool");
                Self::assemble(app, parts, Store::Sqlite { pool, dir })
            }
        }
    }

    /// The app on the PostgreSQL database `database` (created if missing); the database is
    /// dropped when the app is.
    pub async fn spawn_on(database: String, options: Options) -> Self {
        let url = format!("{}/{database}", server_url());
        let figment = Settings::figment(Profile::Test)
            .merge(Serialized::default("database.url", &url))
            .merge(Serialized::default("database.max_connections", 20));
        let (app, parts) = Self::start(figment, options).await;
        let pool = sqlx::PgPool::connect(&url).await.expect("test pool");
        Self::assemble(app, parts, Store::Postgres { pool, database })
    }

    fn assemble(base: String, parts: Started, store: Store) -> Self {
        Self {
            base,
            client: reqwest::Client::builder()
                // Test certificates are self-signed.
                .danger_accept_invalid_certs(true)
                .build()
                .expect("client"),
            auth: parts.auth,
            backend: match store {
                Store::Postgres { .. } => Backend::Postgres,
                Store::Sqlite { .. } => Backend::Sqlite,
            },
            store,
            nats_stream: parts.nats_stream,
            stop: Some(parts.stop),
        }
    }

    /// Builds and starts the app from `figment` plus the test defaults and `options`.
    async fn start(figment: figment::Figment, options: Options) -> (String, Started) {
        let mut figment = figment
            .merge(Serialized::default("server.host", "127.0.0.1"))
            .merge(Serialized::default("server.port", 0))
            .merge(Serialized::default(
                "server.body_limit_bytes",
                options.body_limit_bytes,
            ))
            .merge(Serialized::default("auth.jwt_secret", SECRET));
        for (key, value) in &options.settings {
            figment = figment.merge(Serialized::default(key, value));
        }
        if let Some(limits) = &options.limits {
            figment = figment.merge(Serialized::default("limits", limits));
        }
        if let Some(path) = &options.public_key_path {
            figment = figment.merge(Serialized::default("auth.jwt_public_key_path", path));
        }
        if let Some((cert, key)) = &options.tls {
            figment = figment
                .merge(Serialized::default("server.tls_cert_path", cert))
                .merge(Serialized::default("server.tls_key_path", key));
        }
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let nats_stream = options
            .nats
            .then(|| format!("FUI_TEST_{}", uuid::Uuid::new_v4().simple()));
        if let Some(stream) = &nats_stream {
            figment = figment
                .merge(Serialized::default("nats.url", nats_url()))
                .merge(Serialized::default("nats.stream", stream))
                .merge(Serialized::default(
                    "nats.subject_prefix",
                    format!("fuitest.{}", stream.to_lowercase()),
                ));
        }
        let settings: Settings = figment.extract().expect("test settings");
        let app = Application::build(&settings)
            .await
            .expect("application builds");
        let port = app.port();
        let auth = app.authenticator().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        (
            format!("{scheme}://127.0.0.1:{port}"),
            Started {
                auth,
                nats_stream,
                stop,
            },
        )
    }

    /// The PostgreSQL pool of a test that inspects PostgreSQL itself.
    pub fn pool(&self) -> &sqlx::PgPool {
        match &self.store {
            Store::Postgres { pool, .. } => pool,
            Store::Sqlite { .. } => {
                panic!("this test inspects PostgreSQL; run it on Backend::Postgres")
            }
        }
    }

    /// A token for `sub` in `tenant` with `privileges`.
    pub fn token(&self, sub: &str, tenant: &str, privileges: &[&str]) -> String {
        let privileges: Vec<String> = privileges.iter().map(|p| (*p).to_owned()).collect();
        self.auth
            .issue(sub, tenant, &privileges, Duration::from_secs(600))
            .expect("token")
    }

    /// A modeler of tenant `acme`.
    pub fn modeler(&self) -> String {
        self.token("alice", "acme", &[MODELER])
    }

    pub fn request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
    }

    /// Creates a model and returns its JSON view.
    pub async fn create(&self, token: &str, key: &str) -> Value {
        let response = self
            .request(Method::POST, "/api/v1/process-models", token)
            .json(&serde_json::json!({ "key": key, "name": format!("Model {key}") }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 201, "create {key}");
        response.json().await.expect("json")
    }

    /// The audit log page for `query`, once it holds `expected_total` rows: the audit
    /// projector runs beside the command path (read-your-writes waits for the models
    /// projector only), so its rows can trail a command's response.
    pub async fn audit_page(&self, token: &str, query: &str, expected_total: i64) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let response = self
                .request(Method::GET, &format!("/api/v1/audit-logs{query}"), token)
                .send()
                .await
                .expect("send");
            assert_eq!(response.status(), 200, "{query}");
            let page: Value = response.json().await.expect("json");
            if page["total"] == expected_total {
                return page;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "audit log did not reach {expected_total} rows for {query}: {page}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The app's PostgreSQL database name.
    pub fn database(&self) -> &str {
        match &self.store {
            Store::Postgres { database, .. } => database,
            Store::Sqlite { .. } => panic!("a SQLite test app has no PostgreSQL database"),
        }
    }

    /// The app's PostgreSQL database URL.
    pub fn database_url(&self) -> String {
        format!("{}/{}", server_url(), self.database())
    }

    /// Starts a rebuild of `family` through the admin API (as `token`) and waits until the
    /// generation `generation` is active.
    pub async fn rebuild_to(&self, token: &str, family: &str, generation: i64) {
        let response = self
            .request(
                Method::POST,
                &format!("/api/v1/admin/projections/{family}/rebuild"),
                token,
            )
            .send()
            .await
            .expect("rebuild");
        assert_eq!(response.status(), 202);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let active: i64 =
                sqlx::query_scalar("SELECT active FROM projection_generations WHERE name = $1")
                    .bind(family)
                    .fetch_one(self.pool())
                    .await
                    .expect("generation");
            if active == generation {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "rebuild of {family} did not reach generation {generation}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The global positions of `tenant`'s stored events, in feed order.
    pub async fn tenant_positions(&self, tenant: &str) -> Vec<i64> {
        match &self.store {
            Store::Postgres { pool, .. } => sqlx::query_scalar(
                "SELECT global_position FROM events WHERE metadata->>'tenant_id' = $1 \
                 ORDER BY tx_id, global_position",
            )
            .bind(tenant)
            .fetch_all(pool)
            .await
            .expect("positions"),
            Store::Sqlite { pool, .. } => sqlx::query_scalar(
                "SELECT global_position FROM events WHERE metadata->>'tenant_id' = $1 \
                 ORDER BY global_position",
            )
            .bind(tenant)
            .fetch_all(pool)
            .await
            .expect("positions"),
        }
    }

    /// The sequences stored for one aggregate, in order.
    pub async fn sequences_of(&self, aggregate_id: &str) -> Vec<i64> {
        const SQL: &str = "SELECT sequence FROM events WHERE aggregate_id = $1 ORDER BY sequence";
        match &self.store {
            Store::Postgres { pool, .. } => sqlx::query_scalar(SQL)
                .bind(aggregate_id)
                .fetch_all(pool)
                .await
                .expect("sequences"),
            Store::Sqlite { pool, .. } => sqlx::query_scalar(SQL)
                .bind(aggregate_id)
                .fetch_all(pool)
                .await
                .expect("sequences"),
        }
    }

    /// `(payload, metadata)` of the stored events of one aggregate type, in store order.
    pub async fn events_of_type(&self, aggregate_type: &str) -> Vec<(Value, Value)> {
        const SQL: &str = "SELECT payload, metadata FROM events WHERE aggregate_type = $1 \
                           ORDER BY global_position";
        match &self.store {
            Store::Postgres { pool, .. } => sqlx::query_as(SQL)
                .bind(aggregate_type)
                .fetch_all(pool)
                .await
                .expect("events"),
            Store::Sqlite { pool, .. } => sqlx::query_as(SQL)
                .bind(aggregate_type)
                .fetch_all(pool)
                .await
                .expect("events"),
        }
    }

    /// Counts stored events of one aggregate type.
    pub async fn count_events(&self, aggregate_type: &str) -> i64 {
        const COUNT: &str = "SELECT count(*) FROM events WHERE aggregate_type = $1";
        match &self.store {
            Store::Postgres { pool, .. } => sqlx::query_scalar(COUNT)
                .bind(aggregate_type)
                .fetch_one(pool)
                .await
                .expect("count"),
            Store::Sqlite { pool, .. } => sqlx::query_scalar(COUNT)
                .bind(aggregate_type)
                .fetch_one(pool)
                .await
                .expect("count"),
        }
    }
}

/// What starting an app yields besides its address.
struct Started {
    auth: Authenticator,
    nats_stream: Option<String>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let stream = self.nats_stream.clone();
        let database = match &self.store {
            Store::Postgres { database, .. } => Some(database.clone()),
            Store::Sqlite { dir, .. } => {
                // The server may still be closing the file; removing it is safe on Unix.
                if let Err(error) = std::fs::remove_dir_all(dir) {
                    eprintln!("warning: could not remove {}: {error}", dir.display());
                }
                None
            }
        };
        // Drop cannot be async: drop the database from a helper thread with its own runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime
                .block_on(async {
                    if let Some(stream) = stream {
                        if let Ok(client) = async_nats::connect(nats_url()).await {
                            let _ = async_nats::jetstream::new(client)
                                .delete_stream(&stream)
                                .await;
                        }
                    }
                    let Some(database) = database else {
                        return Ok(());
                    };
                    let mut admin =
                        sqlx::PgConnection::connect(&format!("{}/postgres", server_url())).await?;
                    sqlx::query(&format!(
                        "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
                    ))
                    .execute(&mut admin)
                    .await?;
                    admin.close().await
                })
                .map_err(std::io::Error::other)
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop the test database or NATS stream");
        }
    }
}

/// Asserts a problem+json response with `status`, returning its body.
pub async fn expect_problem(response: Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem body");
    assert_eq!(body["status"], status);
    assert!(body["type"].is_string() && body["title"].is_string() && body["detail"].is_string());
    body
}

/// The smallest editor JSON that publishes: a start event, a flow and an end event.
pub fn publishable_model() -> Value {
    serde_json::json!({
        "stencil": {"id": "BPMNDiagram"},
        "childShapes": [
            {"resourceId": "s", "stencil": {"id": "StartNoneEvent"}, "childShapes": [], "outgoing": [{"resourceId": "f"}]},
            {"resourceId": "f", "stencil": {"id": "SequenceFlow"}, "childShapes": [], "outgoing": [{"resourceId": "e"}], "target": {"resourceId": "e"}},
            {"resourceId": "e", "stencil": {"id": "EndNoneEvent"}, "childShapes": [], "outgoing": []}
        ]
    })
}

/// Path of a shared Flowable fixture, or `None` (with a note) when `../shared` is absent.
pub fn shared_fixture(name: &str) -> Option<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/flowable")
        .join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes).expect("fixture is JSON")),
        Err(_) => {
            eprintln!("skipped: shared fixtures not found at {}", path.display());
            None
        }
    }
}
