//! Opening the embedded database: one file (plus its WAL), owned by one process at a time.
//!
//! SQLite itself would let a second process open the file, but the embedded backend's
//! projector loop and in-process event bus assume they see every write: a second server on
//! the same file would leave the first one's read tables and live stream behind. So the
//! file is guarded by an exclusive lock on `<file>.lock`, taken before the pool opens and
//! held until the store is dropped.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

/// How long a writer waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "{} is in use by another flowable-ui process (lock file {}); stop it first, or point \
         DATA_DIR / APP_DATABASE__SQLITE_PATH elsewhere",
        path.display(),
        lock.display()
    )]
    Locked { path: PathBuf, lock: PathBuf },
    #[error("cannot open {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the SQLite database {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
}

/// The open embedded database and the lock that makes this process its only user.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    pool: SqlitePool,
    path: PathBuf,
    _lock: Arc<File>,
}

impl EmbeddedStore {
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens (creating it and its directory if needed) the database at `path` in WAL mode,
/// after taking the process lock. Fails at once with [`OpenError::Locked`] when another
/// process holds it.
pub async fn open(path: &Path, max_connections: u32) -> Result<EmbeddedStore, OpenError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::Io {
            path: dir.to_owned(),
            source,
        })?;
    }
    let lock_path = lock_path(path);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| OpenError::Io {
            path: lock_path.clone(),
            source,
        })?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(OpenError::Locked {
                path: path.to_owned(),
                lock: lock_path,
            })
        }
        Err(std::fs::TryLockError::Error(source)) => {
            return Err(OpenError::Io {
                path: lock_path,
                source,
            })
        }
    }
    let sqlite_error = |source| OpenError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let options = SqliteConnectOptions::from_str("sqlite:")
        .map_err(sqlite_error)?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // Every commit reaches the disk: an accepted command survives a power cut.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(max_connections.max(2))
        .acquire_timeout(BUSY_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(sqlite_error)?;
    Ok(EmbeddedStore {
        pool,
        path: path.to_owned(),
        _lock: Arc::new(lock),
    })
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        std::env::temp_dir()
            .join(format!("flowable-ui-open-{}-{name}", uuid::Uuid::new_v4()))
            .join("flowable-ui.db")
    }

    #[tokio::test]
    async fn a_second_opener_is_refused_until_the_first_closes() {
        let path = scratch("lock");
        let first = open(&path, 2).await.expect("first open");
        match open(&path, 2).await {
            Err(OpenError::Locked { path: locked, .. }) => assert_eq!(locked, path),
            other => panic!("expected Locked, got {other:?}"),
        }
        first.pool().close().await;
        drop(first);
        let again = open(&path, 2).await.expect("reopen after close");
        again.pool().close().await;
        drop(again);
        if let Some(dir) = path.parent() {
            std::fs::remove_dir_all(dir).expect("clean up");
        }
    }

    #[test]
    fn the_lock_file_sits_beside_the_database() {
        assert_eq!(
            lock_path(Path::new("data/flowable-ui.db")),
            PathBuf::from("data/flowable-ui.db.lock")
        );
    }
}
