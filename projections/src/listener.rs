//! Wakes a feed reader on `NOTIFY events_appended`, with a polling fallback that keeps the
//! reader correct while the `LISTEN` connection is down.

use std::time::Duration;

use sqlx::postgres::{PgListener, PgNotification, PgPoolOptions};
use sqlx::PgPool;
use tokio::time::{sleep_until, timeout, timeout_at, Instant};

use crate::error::chain;

/// The channel the `events` insert trigger notifies (see `migrations/0001_events.sql`).
pub const EVENTS_CHANNEL: &str = "events_appended";

/// Why [`crate::Feed::wait_for_more`] returned. Every reason means "read again".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// An `events_appended` notification arrived.
    Notified,
    /// The poll interval passed without one.
    Timeout,
    /// The listener (re)connected; notifications sent meanwhile were lost.
    Resubscribed,
}

pub(crate) struct Wakeup {
    /// A pool of one connection for the listener alone, so the listener neither takes a
    /// connection from the readers' pool nor waits for one.
    pool: PgPool,
    listener: Option<PgListener>,
    poll_interval: Duration,
    /// `false`: never listen, wake every `poll_interval` (see [`Wakeup::polling`]).
    notifications: bool,
    /// Whether the last attempt to listen failed, so an outage is logged once.
    failing: bool,
    /// The newest appending transaction among the notifications of the last wake; `None`
    /// when that wake was not a notification or one of them named no transaction.
    notified_tx: Option<u64>,
}

impl Wakeup {
    pub(crate) fn new(pool: &PgPool, poll_interval: Duration) -> Self {
        let options = (*pool.connect_options()).clone();
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(poll_interval.max(Duration::from_secs(1)))
            .test_before_acquire(false)
            .connect_lazy_with(options);
        Self {
            pool,
            listener: None,
            poll_interval,
            notifications: true,
            failing: false,
            notified_tx: None,
        }
    }

    /// A wakeup that never listens: it wakes every `poll_interval`. No connection, and no
    /// notification per append for PostgreSQL to deliver to it.
    pub(crate) fn polling(pool: &PgPool, poll_interval: Duration) -> Self {
        Self {
            notifications: false,
            ..Self::new(pool, poll_interval)
        }
    }

    /// Connects and listens if not yet done; `true` if listening.
    pub(crate) async fn ensure_listening(&mut self) -> bool {
        if self.listener.is_some() {
            return true;
        }
        if !self.notifications {
            return false;
        }
        let limit = self.poll_interval.max(Duration::from_secs(5));
        let connect = async {
            let mut listener = PgListener::connect_with(&self.pool).await?;
            // The pool is ours alone and only closes when dropped.
            listener.ignore_pool_close_event(true);
            listener.listen(EVENTS_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match timeout(limit, connect).await {
            Ok(Ok(listener)) => {
                if self.failing {
                    tracing::info!(channel = EVENTS_CHANNEL, "event listener reconnected");
                }
                self.failing = false;
                self.listener = Some(listener);
                true
            }
            Ok(Err(error)) => {
                self.note_failure(&chain(&error));
                false
            }
            Err(_) => {
                self.note_failure("timed out connecting");
                false
            }
        }
    }

    /// See the field `notified_tx`.
    pub(crate) fn notified_tx(&self) -> Option<u64> {
        self.notified_tx
    }

    pub(crate) async fn wait(&mut self) -> Wake {
        self.notified_tx = None;
        let deadline = Instant::now() + self.poll_interval;
        if !self.notifications {
            sleep_until(deadline).await;
            return Wake::Timeout;
        }
        if self.listener.is_none() {
            if self.ensure_listening().await {
                // Anything appended before LISTEN took effect went unnoticed.
                return Wake::Resubscribed;
            }
            sleep_until(deadline).await;
            return Wake::Timeout;
        }
        let Some(listener) = self.listener.as_mut() else {
            sleep_until(deadline).await;
            return Wake::Timeout;
        };
        match timeout_at(deadline, listener.try_recv()).await {
            Err(_) => Wake::Timeout,
            Ok(Ok(Some(first))) => {
                // One read serves every notification that has arrived so far.
                let mut newest = transaction_of(&first);
                while let Some(next) = listener.next_buffered() {
                    newest = newest.zip(transaction_of(&next)).map(|(a, b)| a.max(b));
                }
                self.notified_tx = newest;
                Wake::Notified
            }
            // The connection was lost and re-established; notifications may be lost.
            Ok(Ok(None)) => {
                tracing::info!(
                    channel = EVENTS_CHANNEL,
                    "event listener connection lost, reconnected"
                );
                Wake::Resubscribed
            }
            Ok(Err(error)) => {
                // E.g. the server ended the session: start over with a fresh listener.
                self.listener = None;
                self.note_failure(&chain(&error));
                if self.ensure_listening().await {
                    return Wake::Resubscribed;
                }
                // Poll until it can listen again.
                sleep_until(deadline).await;
                Wake::Timeout
            }
        }
    }

    fn note_failure(&mut self, error: &str) {
        if self.failing {
            tracing::debug!(
                channel = EVENTS_CHANNEL,
                error,
                "event listener still down, polling"
            );
        } else {
            tracing::warn!(
                channel = EVENTS_CHANNEL,
                error,
                "event listener down, falling back to polling"
            );
        }
        self.failing = true;
    }
}

/// The appending transaction a notification names (`migrations/0007`); `None` for one that
/// names none (sent by an older trigger, or by hand).
fn transaction_of(notification: &PgNotification) -> Option<u64> {
    notification.payload().parse().ok()
}
