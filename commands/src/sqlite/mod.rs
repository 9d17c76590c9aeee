//! The write side on the embedded SQLite store: opening the one database file (WAL mode,
//! held by one process at a time), its migrations, and its event log.

mod event_log;
mod file;

pub use event_log::SqliteEventLog;
pub use file::{open, EmbeddedStore, OpenError};

use sqlx::migrate::Migrator;

/// The embedded schema lives in `migrations/sqlite/` at the workspace root.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");

/// How the embedded database's schema compares to the migrations this binary carries.
pub async fn schema_status(
    pool: &sqlx::SqlitePool,
) -> Result<crate::db::SchemaStatus, sqlx::Error> {
    let table_exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
    )
    .fetch_one(pool)
    .await?;
    let applied: Vec<i64> = if table_exists {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    Ok(crate::db::SchemaStatus::against(&MIGRATOR, &applied))
}
