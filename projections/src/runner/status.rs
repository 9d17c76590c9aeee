//! A runner's state as seen from outside, and the handle the API uses for status reports
//! and read-your-writes waits.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::time::{sleep_until, timeout_at, Instant};

use crate::checkpoint;
use crate::error::{chain, FeedError};
use crate::feed;
use crate::position::Position;

/// What a runner is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunnerState {
    /// Not started, or stopped.
    Idle,
    /// Another replica holds the projector's lock; this one retries periodically.
    Standby,
    /// Holds the lock and applies events (or waits for more).
    Running,
    /// The last attempt failed (a batch, or taking the lock); retrying after a back-off.
    Failing,
}

/// A snapshot of a runner's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunnerStatus {
    pub state: RunnerState,
    /// Whether this runner holds the projector's lock, i.e. whether `checkpoint` is kept
    /// current here. A standby refreshes it from the database on each lock attempt only.
    pub lock_held: bool,
    /// The last checkpoint this runner committed or read; `None` before it knows one.
    pub checkpoint: Option<Position>,
    /// The last failure, with its causes, until the next success.
    pub last_error: Option<String>,
    /// Failures in a row; 0 after a success.
    pub consecutive_failures: u32,
    /// Steps that applied events since this runner started (steps that found nothing are
    /// not counted), the events they applied, and their time in all, from the step's start
    /// (its feed read, or its use of a batch read ahead) to its commit.
    pub steps_applied: u64,
    pub events_applied: u64,
    pub step_micros: u64,
}

impl Default for RunnerStatus {
    fn default() -> Self {
        Self {
            state: RunnerState::Idle,
            lock_held: false,
            checkpoint: None,
            last_error: None,
            consecutive_failures: 0,
            steps_applied: 0,
            events_applied: 0,
            step_micros: 0,
        }
    }
}

/// A cheap, cloneable view of one projector: its status, checkpoint and lag, and waits
/// until it has processed a given event (read-your-writes).
#[derive(Clone)]
pub struct ProjectorHandle {
    name: Arc<str>,
    pool: PgPool,
    status: watch::Receiver<RunnerStatus>,
    poll_interval: Duration,
}

impl ProjectorHandle {
    pub(crate) fn new(
        name: Arc<str>,
        pool: PgPool,
        status: watch::Receiver<RunnerStatus>,
        poll_interval: Duration,
    ) -> Self {
        Self {
            name,
            pool,
            status,
            poll_interval,
        }
    }

    /// A handle for a projector that runs elsewhere (another replica, or not here at all):
    /// its status stays `Idle` and every answer comes from the database, re-read every
    /// `poll_interval` while waiting.
    pub fn detached(pool: PgPool, name: &str, poll_interval: Duration) -> Self {
        let (_, status) = watch::channel(RunnerStatus::default());
        Self::new(name.into(), pool, status, poll_interval)
    }

    /// The projector's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The local runner's status.
    pub fn status(&self) -> RunnerStatus {
        self.status.borrow().clone()
    }

    /// The projector's checkpoint: the local runner's while it holds the lock (no query),
    /// else the one committed in the database.
    pub async fn checkpoint(&self) -> Result<Position, FeedError> {
        let status = self.status();
        match status.checkpoint {
            Some(position) if status.lock_held => Ok(position),
            _ => Ok(checkpoint::position(&self.pool, &self.name).await?),
        }
    }

    /// How many committed events the projector has yet to process.
    pub async fn lag(&self) -> Result<i64, FeedError> {
        let position = self.checkpoint().await?;
        feed::count_after(&self.pool, position).await
    }

    /// Waits until the projector has processed every event up to and including `target`
    /// (a committed event's [`Position`]), at most `timeout`; `true` if it has.
    ///
    /// The feed never skips an event, so "checkpoint ≥ target" means the target event and
    /// every event before it in feed order are applied. Comparing global positions alone
    /// would be wrong: feed order is transaction order first. Wakes on every checkpoint the
    /// local runner commits; when this replica does not hold the lock (another replica
    /// runs the projector) it reads the committed checkpoint every poll interval. Database
    /// errors while waiting count as "not yet".
    pub async fn wait_for(&self, target: Position, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut status = self.status.clone();
        let mut runner_alive = true;
        loop {
            let local = status.borrow_and_update().clone();
            if local.checkpoint.is_some_and(|position| position >= target) {
                return true;
            }
            if !local.lock_held {
                match checkpoint::load(&self.pool, &self.name).await {
                    Ok(Some(checkpoint)) if checkpoint.position >= target => return true,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::debug!(projector = %self.name, error = %chain(&error), "checkpoint read failed while waiting");
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let tick = deadline.min(now + self.poll_interval);
            if runner_alive {
                match timeout_at(tick, status.changed()).await {
                    Ok(Ok(())) | Err(_) => {}
                    Ok(Err(_)) => runner_alive = false,
                }
            } else {
                sleep_until(tick).await;
            }
        }
    }

    /// [`Self::wait_for`] the committed event with this global position. Fails with
    /// [`FeedError::UnknownEvent`] if there is no such event.
    pub async fn wait_for_event(
        &self,
        global_position: i64,
        timeout: Duration,
    ) -> Result<bool, FeedError> {
        let target = feed::position_of(&self.pool, global_position)
            .await?
            .ok_or(FeedError::UnknownEvent(global_position))?;
        Ok(self.wait_for(target, timeout).await)
    }

    /// [`Self::wait_for`] an aggregate's latest committed event (all of its events, as the
    /// feed keeps each aggregate's order); `true` at once if it has no events.
    pub async fn wait_for_aggregate(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        timeout: Duration,
    ) -> Result<bool, FeedError> {
        match feed::last_position_of(&self.pool, aggregate_type, aggregate_id).await? {
            Some(target) => Ok(self.wait_for(target, timeout).await),
            None => Ok(true),
        }
    }
}
