//! How a projector runner paces itself.

use std::time::Duration;

use crate::feed;

/// The default [`RunnerConfig::batch_bytes`]: a batch of small events (a few hundred
/// bytes each) is not cut; one of 16 KB editor documents (≈ 4 KB stored, compressed) ends
/// after ≈ 60 of them.
pub const DEFAULT_BATCH_BYTES: i64 = 256 * 1024;

/// How a runner paces itself.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Most events per transaction.
    pub batch_size: i64,
    /// A batch also ends once its payloads' stored size reaches this many bytes (see
    /// [`feed::read_next_within`]): it bounds a batch's memory when events are large.
    pub batch_bytes: i64,
    /// How often the feed re-reads when no notification arrives.
    pub poll_interval: Duration,
    /// Whether the runner wakes on the append notifications. `false`: it reads every
    /// `poll_interval` alone (for a consumer nobody waits for; see [`crate::Feed::polling`]).
    pub notifications: bool,
    /// How often a standby tries the lock.
    pub lock_retry_interval: Duration,
    /// How often the active runner checks that its lock connection is alive.
    pub lock_check_interval: Duration,
    /// The lock connection's `idle_session_timeout`: how long the server keeps the lock
    /// of a holder that went silent (keep it well above `lock_check_interval` and above
    /// the longest batch). `None` leaves the server's setting.
    pub lock_idle_session_timeout: Option<Duration>,
    /// The first back-off after a failure; it doubles per failure in a row.
    pub retry_initial: Duration,
    /// The longest back-off.
    pub retry_max: Duration,
    /// How often a handle's `wait_for` re-reads the committed checkpoint while this
    /// replica does not hold the lock.
    pub wait_poll_interval: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            batch_size: 100,
            batch_bytes: DEFAULT_BATCH_BYTES,
            poll_interval: feed::DEFAULT_POLL_INTERVAL,
            notifications: true,
            lock_retry_interval: Duration::from_secs(5),
            lock_check_interval: Duration::from_secs(1),
            lock_idle_session_timeout: Some(Duration::from_secs(60)),
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
            wait_poll_interval: Duration::from_millis(50),
        }
    }
}
