//! The session-level advisory lock that makes one runner per projector the active one.
//!
//! The lock lives on a dedicated connection (never a pooled one, which could be reused or
//! recycled) and dies with it: when the holder's process dies or its connection drops,
//! PostgreSQL releases the lock and a standby runner takes over on its next attempt.

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::time::{timeout, Instant};

/// How long a liveness check of the lock connection may take before the lock counts as lost.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// The advisory lock key of a projector: FNV-1a (64 bit) of a namespace and the name.
/// Stable across builds, platforms and Rust versions (std's hasher is not), so every
/// replica computes the same key.
pub fn advisory_lock_key(name: &str) -> i64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = b"flowable-ui/projector/"
        .iter()
        .chain(name.as_bytes())
        .fold(OFFSET_BASIS, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
        });
    i64::from_be_bytes(hash.to_be_bytes())
}

/// A held advisory lock and the connection it lives on.
pub(crate) struct AdvisoryLock {
    conn: PgConnection,
    key: i64,
    checked_at: Instant,
}

impl AdvisoryLock {
    /// Opens a dedicated connection and tries the lock once; `None` if another session
    /// holds it. `idle_session_timeout` makes the server end the session (and so release
    /// the lock) if the holder goes silent without closing its connection, e.g. when its
    /// host vanishes; a live holder checks the connection more often than that.
    pub(crate) async fn try_acquire(
        options: &PgConnectOptions,
        key: i64,
        idle_session_timeout: Option<Duration>,
    ) -> Result<Option<Self>, sqlx::Error> {
        let mut conn = PgConnection::connect_with(options).await?;
        let acquired: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut conn)
            .await?;
        if !acquired {
            // Dropping would close it too; closing politely saves the server a broken pipe.
            let _ = conn.close().await;
            return Ok(None);
        }
        if let Some(limit) = idle_session_timeout {
            let millis = limit.as_millis().to_string();
            // idle_session_timeout exists from PostgreSQL 14; without it, fail-over after a
            // silent death waits for TCP keepalive.
            if let Err(error) = sqlx::query("SELECT set_config('idle_session_timeout', $1, false)")
                .bind(millis)
                .execute(&mut conn)
                .await
            {
                tracing::debug!(%error, "could not set idle_session_timeout on the lock connection");
            }
        }
        Ok(Some(Self {
            conn,
            key,
            checked_at: Instant::now(),
        }))
    }

    /// Whether the last liveness check is older than `every`.
    pub(crate) fn check_due(&self, every: Duration) -> bool {
        self.checked_at.elapsed() >= every
    }

    /// Whether the lock connection is alive (and so the lock still held).
    pub(crate) async fn still_held(&mut self) -> bool {
        let ping = sqlx::query("SELECT 1").execute(&mut self.conn);
        let alive = matches!(timeout(PING_TIMEOUT, ping).await, Ok(Ok(_)));
        self.checked_at = Instant::now();
        alive
    }

    /// Unlocks and closes the connection (closing alone would release it, too).
    pub(crate) async fn release(mut self) {
        let unlock = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(self.key)
            .execute(&mut self.conn);
        if let Ok(Ok(_)) = timeout(PING_TIMEOUT, unlock).await {
            let _ = timeout(PING_TIMEOUT, self.conn.close()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::advisory_lock_key;

    #[test]
    fn keys_are_pinned() {
        // Every replica and every release must agree on the keys: changing them would let
        // an old and a new replica run the same projector at once during an upgrade.
        assert_eq!(
            advisory_lock_key("process_models"),
            6_471_404_233_427_511_186
        );
        assert_eq!(advisory_lock_key("audit_logs"), 2_670_974_785_644_776_341);
    }
}
