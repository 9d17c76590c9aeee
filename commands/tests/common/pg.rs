//! A fresh PostgreSQL database per test, and the events the event-log tests append.
// Each test crate that declares `mod common` compiles this; not every one uses all of it.
#![allow(dead_code)]

use std::str::FromStr;

use commands::store::NewEvent;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection, PgPool};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The admin URL's server and user, with database `name`.
fn database_options(name: &str) -> PgConnectOptions {
    PgConnectOptions::from_str(&admin_url())
        .expect("url")
        .database(name)
}

/// A fresh, migrated database, dropped when the test ends (also when it fails).
pub struct TestDb {
    pub pool: PgPool,
    name: String,
}

impl TestDb {
    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How to connect to the database (another connection than the pool's).
    pub fn connect_options(&self) -> PgConnectOptions {
        database_options(&self.name)
    }

    pub async fn create() -> Self {
        let name = format!("ct_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url()).await.expect("connect");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create database");
        let _ = admin.close().await;
        let db = Self {
            pool: PgPoolOptions::new().connect_lazy_with(database_options(&name)),
            name,
        };
        MIGRATOR.run(&db.pool).await.expect("migrate");
        db
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await: drop the database from a thread with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
                    let _ = admin
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                }
            });
        })
        .join();
    }
}

pub fn event(id: &str, sequence: usize) -> NewEvent {
    NewEvent {
        aggregate_type: "ProcessModel".to_owned(),
        aggregate_id: id.to_owned(),
        sequence,
        event_type: "MetadataChanged".to_owned(),
        event_version: "1.0".to_owned(),
        payload: json!({"MetadataChanged": {"name": format!("n{sequence}")}}).to_string(),
        metadata: json!({"user_id": "alice"}).to_string(),
    }
}

/// `(aggregate_id, sequence, tx_id, global_position)` of every stored event.
pub async fn rows(db: &TestDb) -> Vec<(String, i64, i64, i64)> {
    sqlx::query_as(
        "SELECT aggregate_id, sequence, tx_id::text::bigint, global_position
           FROM events ORDER BY global_position",
    )
    .fetch_all(&db.pool)
    .await
    .expect("rows")
}
