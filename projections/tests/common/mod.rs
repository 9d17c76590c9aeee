//! Test support: a fresh, migrated PostgreSQL database per test, dropped when the test
//! ends (passing or failing); appending events with plain SQL; polling with a deadline.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgExecutor, PgPool, Postgres, Transaction};
use tokio::time::{sleep, Instant};

static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// The server the tests use; override with `TEST_DATABASE_ADMIN_URL`.
fn admin_url() -> String {
    std::env::var("TEST_DATABASE_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database of its own for one test.
pub struct TestDb {
    pub pool: PgPool,
    pub name: String,
    options: PgConnectOptions,
}

impl TestDb {
    pub async fn create() -> Self {
        let db = Self::create_empty().await;
        MIGRATOR.run(&db.pool).await.expect("run the migrations");
        db
    }

    /// A database without any migration applied.
    pub async fn create_empty() -> Self {
        let admin_url = admin_url();
        let name = format!("ft_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("connect to the test PostgreSQL server");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        let options = PgConnectOptions::from_str(&admin_url)
            .expect("parse TEST_DATABASE_ADMIN_URL")
            .database(&name);
        // From here on, Drop removes the database even if a step below fails.
        let pool = PgPoolOptions::new()
            .max_connections(24)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options.clone());
        Self {
            pool,
            name,
            options,
        }
    }

    /// Applies every migration of the repository.
    pub async fn migrate(&self) {
        MIGRATOR.run(&self.pool).await.expect("run the migrations");
    }

    pub fn connect_options(&self) -> PgConnectOptions {
        self.options.clone()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        run_in_drop(
            format!("drop test database {}", self.name),
            move || async move {
                // FORCE ends the test's open connections.
                let mut admin = PgConnection::connect(&admin_url()).await?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await?;
                let _ = admin.close().await;
                Ok(())
            },
        );
    }
}

/// Applies the repository's migrations numbered below `before`, from a copy of the folder.
pub async fn migrate_before(pool: &PgPool, before: &str) {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let copy =
        std::env::temp_dir().join(format!("fui-migrations-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir(&copy).expect("create the folder");
    for entry in std::fs::read_dir(&source).expect("read the migrations") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_file() && name.ends_with(".sql") && name < before {
            std::fs::copy(&path, copy.join(name)).expect("copy a migration");
        }
    }
    let migrated = async {
        Migrator::new(copy.as_path())
            .await
            .expect("load the migrations")
            .run(pool)
            .await
    }
    .await;
    std::fs::remove_dir_all(&copy).expect("remove the copy");
    migrated.expect("run the older migrations");
}

/// What a clean-up step may fail with.
pub type CleanupError = Box<dyn std::error::Error + Send + Sync>;

/// Runs the clean-up `work` from a `Drop`, which cannot await and may run while the test's
/// runtime unwinds: on a thread with a runtime of its own. A failure is reported naming
/// `what`, not raised (the test's own outcome stands).
pub fn run_in_drop<F, Fut>(what: String, work: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), CleanupError>>,
{
    let done = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(work())
    })
    .join();
    if !matches!(done, Ok(Ok(()))) {
        eprintln!("could not {what}: {done:?}");
    }
}

/// Asserts that `error` is PostgreSQL's error `code` (SQLSTATE).
pub fn assert_sql_state(error: &sqlx::Error, code: &str) {
    assert_eq!(
        error.as_database_error().and_then(|e| e.code()).as_deref(),
        Some(code),
        "{error}"
    );
}

/// Appends one event, as postgres-es would (named columns, defaults for the rest), and
/// returns its global position.
pub async fn append<'e>(
    executor: impl PgExecutor<'e>,
    aggregate_id: &str,
    sequence: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Test', $1, $2, 'Happened', '1.0', jsonb_build_object('Happened', jsonb_build_object('n', $2)), '{}') \
         RETURNING global_position",
    )
    .bind(aggregate_id)
    .bind(sequence)
    .fetch_one(executor)
    .await
}

/// A transaction with an id and nothing written: while it stays open it holds the feed's
/// xmin gate shut for every transaction that starts after it.
pub async fn open_older_transaction(pool: &PgPool) -> Transaction<'static, Postgres> {
    let mut older = pool.begin().await.expect("begin");
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *older)
        .await
        .expect("assign a transaction id");
    older
}

/// Appends `count` events to a fresh aggregate, each in its own transaction; their global
/// positions.
pub async fn append_many(pool: &PgPool, aggregate_id: &str, count: i64) -> Vec<i64> {
    let mut positions = Vec::new();
    for sequence in 1..=count {
        positions.push(
            append(pool, aggregate_id, sequence)
                .await
                .expect("append an event"),
        );
    }
    positions
}

/// Polls `check` until it returns `true`; panics naming `what` after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        sleep(Duration::from_millis(20)).await;
    }
}

/// A small deterministic PRNG (xorshift64*), so the tests need no extra crate and a
/// failing run can be repeated with the same seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// Uniform-ish in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound
    }
}

/// How many connections to the test database are listening for notifications.
pub async fn listening_connections(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_one(pool)
    .await
    .expect("count listening connections")
}
