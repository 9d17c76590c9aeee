//! The checkpointed projector runner: one active runner per projector across replicas
//! (session advisory lock, fail-over when the holder dies), each batch applied and
//! checkpointed together (one transaction, or one statement: ADR 0011), failures rolled
//! back and retried, never skipped.

mod config;
mod lock;
mod projector;
mod status;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures::FutureExt as _;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::sleep;

use crate::checkpoint;
use crate::error::{chain, ProjectionError};
use crate::event::StoredEvent;
use crate::feed::{self, Feed};
use crate::position::Position;

pub use config::{RunnerConfig, DEFAULT_BATCH_BYTES};
pub use lock::advisory_lock_key;
use lock::AdvisoryLock;
use projector::begin_live_step;
pub(crate) use projector::begin_step;
pub use projector::{LiveOutcome, Projector};
pub use status::{ProjectorHandle, RunnerState, RunnerStatus};

/// Runs one [`Projector`] against the feed until shut down.
///
/// Loop: take the projector's advisory lock (else stand by and retry); then repeatedly
/// read the next batch after the checkpoint, and write its effects and move the checkpoint
/// past it together: in one transaction around `apply`, or in the projector's own statement
/// (`apply_live`); when caught up, wait on the feed. Even if two runners overlapped (a lock
/// lost while a batch was in flight), the checkpoint's compare-and-set lets one of them
/// move it past a batch and makes the other read where it is: no event is applied twice or
/// skipped.
pub struct ProjectorRunner<P: ?Sized> {
    pool: PgPool,
    /// The feed reads' own connection (see [`feed_reader_pool`]).
    feed_reads: PgPool,
    /// The connection of a projector's steps without a transaction
    /// ([`Projector::apply_live`]); never opened for a projector without them.
    live_steps: PgPool,
    projector: Arc<P>,
    name: Arc<str>,
    key: i64,
    config: RunnerConfig,
    status: watch::Sender<RunnerStatus>,
}

/// One connection like `pool`'s that always uses the generic plan of a prepared statement,
/// for the runner's feed reads (a read and the read-ahead never overlap). Why: with the
/// position and limit as constants the planner expected a custom plan to be cheaper, so
/// PostgreSQL planned the feed query anew for every batch: ≈ 220 µs, more than reading a
/// batch of ten (`pg_stat_statements` with `track_planning`; docs/performance.md, "Editor
/// JSON as text; plans made once"). The generic plan is the same walk of the feed index.
fn feed_reader_pool(pool: &PgPool) -> PgPool {
    pg_support::generic_plan_pool(pool, 1)
}

/// The first recheck after a read that found events held back; see `recheck` in `lead`.
const RECHECK_FIRST: std::time::Duration = std::time::Duration::from_millis(1);

enum Step {
    Applied {
        to: Position,
        count: usize,
        /// The batch was as long as allowed: more may be readable at once.
        full: bool,
        /// Committed events after the batch wait behind the xmin gate.
        held_back: bool,
        /// After a full batch: the next one, read while this one was applied.
        ahead: Option<ReadAhead>,
    },
    /// Nothing readable after the checkpoint; `held_back`: committed events wait behind
    /// the xmin gate.
    CaughtUp { held_back: bool },
    /// The stored checkpoint is elsewhere: here.
    Moved(Position),
}

/// A batch read while the previous one was being applied, for the step after it.
struct ReadAhead {
    /// The position it was read after: the end of the batch being applied then.
    after: Position,
    /// The limit it was read with.
    limit: i64,
    batch: feed::Batch,
}

/// What the lead loop does after a step.
enum Next {
    ReadOn,
    /// Caught up: wait for the feed, and with `Some`, look again after that long anyway.
    Wait(Option<std::time::Duration>),
}

struct StepFailure {
    error: ProjectionError,
    /// The last event of the batch that failed, if it failed while applying one.
    attempted_until: Option<Position>,
}

impl<E: Into<ProjectionError>> From<E> for StepFailure {
    fn from(error: E) -> Self {
        Self {
            error: error.into(),
            attempted_until: None,
        }
    }
}

enum Exit {
    Shutdown,
    LostLock,
}

impl<P: Projector + ?Sized> ProjectorRunner<P> {
    /// A runner for `projector` on `pool`'s database. Nothing happens until [`Self::run`].
    pub fn new(pool: PgPool, projector: Arc<P>, config: RunnerConfig) -> Self {
        let name: Arc<str> = projector.name().into();
        let (status, _) = watch::channel(RunnerStatus::default());
        Self {
            feed_reads: feed_reader_pool(&pool),
            live_steps: pg_support::projector_step_pool(&pool, 1),
            pool,
            key: advisory_lock_key(&name),
            projector,
            name,
            config,
            status,
        }
    }

    /// The projector's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A handle on this runner's status and checkpoint; stays valid after the runner stops.
    pub fn handle(&self) -> ProjectorHandle {
        ProjectorHandle::new(
            self.name.clone(),
            self.pool.clone(),
            self.status.subscribe(),
            self.config.wait_poll_interval,
        )
    }

    /// Runs until `shutdown` completes (e.g. `async { rx.changed().await; }` on a
    /// `tokio::sync::watch` channel). A batch in flight is finished first; then the lock is
    /// released so a standby takes over at once. Errors never end the run: they are
    /// logged, reported in the status and retried.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = pin!(shutdown);
        tracing::info!(projector = %self.name, key = self.key, "projector runner started");
        let mut pause_first = false;
        while let Some(lock) = self.acquire(shutdown.as_mut(), pause_first).await {
            match self.lead(lock, shutdown.as_mut()).await {
                Exit::Shutdown => break,
                // Give a standby on a healthier connection the first chance to take over.
                Exit::LostLock => pause_first = true,
            }
        }
        self.update(|status| {
            status.state = RunnerState::Idle;
            status.lock_held = false;
        });
        tracing::info!(projector = %self.name, "projector runner stopped");
    }

    /// Stands by until the lock is ours; `None` on shutdown. With `pause_first`, waits one
    /// retry interval before the first attempt.
    async fn acquire<S: Future<Output = ()>>(
        &self,
        mut shutdown: Pin<&mut S>,
        pause_first: bool,
    ) -> Option<AdvisoryLock> {
        let mut pause = pause_first;
        loop {
            if pause {
                tokio::select! {
                    biased;
                    () = shutdown.as_mut() => return None,
                    () = sleep(self.config.lock_retry_interval) => {}
                }
            }
            pause = true;
            if is_done(shutdown.as_mut()) {
                return None;
            }
            let options = self.pool.connect_options();
            match AdvisoryLock::try_acquire(
                &options,
                self.key,
                self.config.lock_idle_session_timeout,
            )
            .await
            {
                Ok(Some(lock)) => {
                    tracing::info!(projector = %self.name, "took the projector lock, running");
                    return Some(lock);
                }
                Ok(None) => {
                    let committed = checkpoint::load(&self.pool, &self.name)
                        .await
                        .ok()
                        .flatten()
                        .map(|checkpoint| checkpoint.position);
                    let was = self.update(|status| {
                        status.state = RunnerState::Standby;
                        status.lock_held = false;
                        status.checkpoint = committed.or(status.checkpoint);
                        status.last_error = None;
                        status.consecutive_failures = 0;
                    });
                    if was != RunnerState::Standby {
                        tracing::info!(projector = %self.name, "another replica holds the projector lock, standing by");
                    }
                }
                Err(error) => {
                    let error = chain(&error);
                    tracing::warn!(projector = %self.name, %error, "could not try the projector lock");
                    self.update(|status| {
                        status.state = RunnerState::Failing;
                        status.lock_held = false;
                        status.last_error = Some(error);
                        status.consecutive_failures = status.consecutive_failures.saturating_add(1);
                    });
                }
            }
        }
    }

    /// Applies the feed while holding the lock.
    async fn lead<S: Future<Output = ()>>(
        &self,
        mut lock: AdvisoryLock,
        mut shutdown: Pin<&mut S>,
    ) -> Exit {
        let mut feed = if self.config.notifications {
            Feed::with_poll_interval(self.pool.clone(), self.config.poll_interval)
        } else {
            Feed::polling(self.pool.clone(), self.config.poll_interval)
        };
        feed.listen().await;
        let mut retry = self.config.retry_initial;
        // After a failed batch, go one event at a time up to its end, so the events
        // before the failing one are applied and the checkpoint stops right before it.
        let mut careful_until: Option<Position> = None;
        self.update(|status| {
            status.state = RunnerState::Running;
            status.lock_held = true;
        });
        // Where this runner believes its checkpoint is; every step checks it against the
        // stored one (`None`: not known yet, read it first).
        let mut at: Option<Position> = None;
        // When to look again after a read that found committed events held back by the
        // xmin gate: an older transaction, of any database in the cluster, is still open,
        // and its end sends no notification. Without a recheck such events would wait for
        // the next append or the poll interval; with it, for the open transaction plus a
        // back-off (1, 2, 4 … ms, up to the poll interval). Reset by progress.
        //
        // The back-off grows only when a recheck fires, so it follows how long the gate has
        // been shut. Grown on every wake, a burst of notifications (each command committed
        // behind an open projector transaction notifies, and finds its event held back)
        // pushed it to the poll interval within milliseconds; the transaction then ended
        // unannounced and the held-back events, whose writers all waited for them
        // (read-your-writes), sat out a whole poll interval.
        let mut recheck = RECHECK_FIRST;
        // The next batch when the last step read it ahead; used only by the step that
        // starts where it was read and with the same limit.
        let mut ahead: Option<ReadAhead> = None;
        loop {
            if is_done(shutdown.as_mut()) {
                lock.release().await;
                return Exit::Shutdown;
            }
            if lock.check_due(self.config.lock_check_interval) && !lock.still_held().await {
                return self.lost_lock();
            }
            let limit = if careful_until.is_some() {
                1
            } else {
                self.config.batch_size
            };
            let from = match at {
                Some(from) => from,
                None => match self.stored_checkpoint().await {
                    Ok(from) => from,
                    Err(failure) => {
                        if self.back_off(&mut retry, failure, shutdown.as_mut()).await {
                            lock.release().await;
                            return Exit::Shutdown;
                        }
                        continue;
                    }
                },
            };
            at = Some(from);
            let prefetched = ahead
                .take()
                .filter(|read| read.after == from && read.limit == limit)
                .map(|read| read.batch);
            let started = std::time::Instant::now();
            let next = match self.step(from, limit, prefetched).await {
                Ok(Step::Applied {
                    to,
                    count,
                    full,
                    held_back,
                    ahead: next_batch,
                }) => {
                    tracing::debug!(projector = %self.name, checkpoint = %to, count, held_back, full, "applied");
                    retry = self.config.retry_initial;
                    if careful_until.is_some_and(|until| to >= until) {
                        careful_until = None;
                    }
                    self.applied(to, count, started.elapsed());
                    at = Some(to);
                    ahead = next_batch;
                    recheck = RECHECK_FIRST;
                    if full {
                        Next::ReadOn
                    } else {
                        // The read saw everything committed then; anything later notifies.
                        Self::wait_after_read(held_back, &mut recheck)
                    }
                }
                Ok(Step::CaughtUp { held_back }) => {
                    tracing::trace!(projector = %self.name, checkpoint = %from, held_back, "caught up");
                    retry = self.config.retry_initial;
                    careful_until = None;
                    self.succeeded(from);
                    Self::wait_after_read(held_back, &mut recheck)
                }
                Ok(Step::Moved(stored)) => {
                    // The stored checkpoint is not where this runner thought (a new
                    // checkpoint row, or a rebuild's swap moved it): go on from there.
                    tracing::debug!(projector = %self.name, expected = %from, stored = %stored, "checkpoint moved");
                    at = Some(stored);
                    Next::ReadOn
                }
                Err(failure) => {
                    if let Some(until) = failure.attempted_until {
                        careful_until = Some(careful_until.map_or(until, |c| c.max(until)));
                    }
                    // The failed step rolled back; read the stored checkpoint again.
                    at = None;
                    if self
                        .back_off(&mut retry, failure.error, shutdown.as_mut())
                        .await
                    {
                        lock.release().await;
                        return Exit::Shutdown;
                    }
                    Next::ReadOn
                }
            };
            // Caught up: wait until the feed may have something new: a notification (an
            // append committed), the poll interval, a re-subscription, or the recheck of
            // events held back.
            if let Next::Wait(pause) = next {
                let recheck_due = async {
                    match pause {
                        Some(pause) => sleep(pause).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    () = shutdown.as_mut() => {
                        lock.release().await;
                        return Exit::Shutdown;
                    }
                    wake = feed.wait_for_news(at.unwrap_or(Position::START)) => {
                        tracing::trace!(projector = %self.name, ?wake, notified_tx = ?feed.notified_tx(), "woken");
                    }
                    () = recheck_due => {
                        tracing::trace!(projector = %self.name, ?pause, "recheck");
                        recheck = (recheck * 2).min(self.config.poll_interval);
                    }
                }
            }
        }
    }

    /// How to wait after a read that left the runner caught up: for notifications alone,
    /// or, while committed events are held back, also for the next recheck (the back-off
    /// grows when a recheck fires, see `recheck` in `lead`).
    fn wait_after_read(held_back: bool, recheck: &mut std::time::Duration) -> Next {
        if held_back {
            Next::Wait(Some(*recheck))
        } else {
            *recheck = RECHECK_FIRST;
            Next::Wait(None)
        }
    }

    /// Reports a failure and sleeps the back-off (doubling it); `true` when shut down
    /// meanwhile.
    async fn back_off<S: Future<Output = ()>>(
        &self,
        retry: &mut std::time::Duration,
        error: ProjectionError,
        mut shutdown: Pin<&mut S>,
    ) -> bool {
        let error = chain(&error);
        tracing::error!(projector = %self.name, %error, retry = ?*retry, "batch failed and was rolled back; retrying");
        self.update(|status| {
            status.state = RunnerState::Failing;
            status.last_error = Some(error);
            status.consecutive_failures = status.consecutive_failures.saturating_add(1);
        });
        tokio::select! {
            biased;
            () = shutdown.as_mut() => return true,
            () = sleep(*retry) => {}
        }
        *retry = retry.saturating_mul(2).min(self.config.retry_max);
        false
    }

    /// The stored checkpoint (creating the row at the start if there is none).
    async fn stored_checkpoint(&self) -> Result<Position, ProjectionError> {
        let mut tx = self.pool.begin().await?;
        let stored = checkpoint::load_for_update(&mut tx, &self.name).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// One step after `from`, the checkpoint this runner believes stored: read a batch (a
    /// plain read, so a wake that finds nothing costs one query and no transaction; with
    /// what the projector reads along, [`Projector::read_also`]; or `prefetched`, read
    /// after `from` by the step before), then move the stored checkpoint from `from` to the
    /// batch's end (compare-and-set, so an overlapping runner can never apply the same
    /// events) and apply, together: in one transaction, or in the projector's own
    /// statement ([`Projector::apply_live`]). A checkpoint that is not at `from` is
    /// reported as [`Step::Moved`] and nothing is applied.
    ///
    /// After a full batch more is probably readable (a catch-up), so the next batch is read
    /// on another connection while this one is applied: the relay publishes while
    /// PostgreSQL reads, a projector's read overlaps its writes. A read ahead is an ordinary
    /// read after this batch's end; the next step uses it only if it starts there, and its
    /// compare-and-set still guards against anything that moved the checkpoint meanwhile.
    /// This step's own transaction or write statement can only make that read stop short
    /// (its id holds the xmin gate for events committed after it began), never skip an
    /// event. A read ahead comes without what the projector reads along with a batch: the
    /// step it is for loads that itself, after this step's write.
    ///
    /// The commit does not wait for its WAL flush (`synchronous_commit = off`, set with the
    /// `BEGIN` in the same round trip): a projector writes only state derived from the
    /// durable event store together with its checkpoint, so a crash can lose at most the
    /// last few steps *as a whole*, effects and checkpoint alike, and they are applied again
    /// from the events. Readers see a step as soon as it commits either way. This takes a
    /// WAL flush off every command's read-your-writes wait.
    async fn step(
        &self,
        from: Position,
        limit: i64,
        prefetched: Option<feed::Batch>,
    ) -> Result<Step, StepFailure> {
        let max_bytes = self.config.batch_bytes;
        let feed::Batch {
            events,
            held_back,
            truncated,
            also,
        } = match prefetched {
            Some(batch) => batch,
            None => {
                let also = self.projector.read_also();
                feed::read_next_also(&self.feed_reads, from, limit, max_bytes, also).await?
            }
        };
        let Some(last) = events.last().map(StoredEvent::position) else {
            return Ok(Step::CaughtUp { held_back });
        };
        let full = truncated || i64::try_from(events.len()).unwrap_or(i64::MAX) >= limit;
        // A task of its own, so that decoding the rows runs on another worker thread
        // beside `apply` (the relay's publishing is CPU-bound on this one). The set aborts
        // it when a failed or moved step returns early.
        let mut read_ahead = JoinSet::new();
        if full {
            let pool = self.feed_reads.clone();
            read_ahead
                .spawn(async move { feed::read_next_within(&pool, last, limit, max_bytes).await });
        }
        if let Some(stored) = self
            .apply_and_commit(from, last, &events, also.as_deref())
            .await?
        {
            return Ok(Step::Moved(stored));
        }
        let ahead = match read_ahead.join_next().await {
            Some(Ok(Ok(batch))) => Some(ReadAhead {
                after: last,
                limit,
                batch,
            }),
            Some(Ok(Err(error))) => {
                // Nothing lost: the next step reads again itself (and reports the error if
                // it persists).
                tracing::warn!(projector = %self.name, error = %chain(&error), "read ahead failed; the next step reads again");
                None
            }
            Some(Err(error)) => {
                tracing::warn!(projector = %self.name, %error, "read ahead task failed; the next step reads again");
                None
            }
            None => None,
        };
        Ok(Step::Applied {
            to: last,
            count: events.len(),
            full,
            held_back,
            ahead,
        })
    }

    /// The writes of a step: moves the stored checkpoint from `from` to `last`
    /// (compare-and-set) and applies `events`, together: in the projector's own statement
    /// where it has one ([`Projector::apply_live`]), else in a transaction. `Some(stored)`
    /// when the checkpoint was not at `from` (nothing applied).
    async fn apply_and_commit(
        &self,
        from: Position,
        last: Position,
        events: &[StoredEvent],
        read: Option<&str>,
    ) -> Result<Option<Position>, StepFailure> {
        let step = checkpoint::Move {
            name: &self.name,
            from,
            to: last,
        };
        let live = self
            .projector
            .apply_live(&self.live_steps, step, events, read);
        let live = AssertUnwindSafe(live)
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                Some(Err(ProjectionError::failed(
                    last.global_position,
                    panic_message(panic),
                )))
            });
        match live {
            Some(Ok(LiveOutcome::Applied)) => {
                self.projector.committed();
                return Ok(None);
            }
            Some(Ok(LiveOutcome::Moved(stored))) => return Ok(Some(stored)),
            Some(Err(error)) => {
                return Err(StepFailure {
                    error,
                    attempted_until: Some(last),
                })
            }
            None => {}
        }
        let mut tx = begin_live_step(&self.pool).await?;
        if !checkpoint::advance(&mut tx, &self.name, from, last).await? {
            let stored = checkpoint::position(&mut *tx, &self.name).await?;
            tx.rollback().await?;
            return Ok(Some(stored));
        }
        let applied = AssertUnwindSafe(self.projector.apply(&mut tx, events))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                Err(ProjectionError::failed(
                    last.global_position,
                    panic_message(panic),
                ))
            });
        if let Err(error) = applied {
            // Dropping would roll back too; doing it here returns a clean connection.
            let _ = tx.rollback().await;
            return Err(StepFailure {
                error,
                attempted_until: Some(last),
            });
        }
        tx.commit().await?;
        self.projector.committed();
        Ok(None)
    }

    fn succeeded(&self, checkpoint: Position) {
        self.update(|status| running_at(status, checkpoint));
    }

    /// A step applied `events` up to `checkpoint` in `took`. One update: every change of the
    /// status wakes the requests waiting on it.
    fn applied(&self, checkpoint: Position, events: usize, took: std::time::Duration) {
        self.update(|status| {
            running_at(status, checkpoint);
            status.steps_applied += 1;
            status.events_applied += events as u64;
            status.step_micros += u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        });
    }

    fn lost_lock(&self) -> Exit {
        tracing::warn!(projector = %self.name, "lost the projector lock (its connection died), standing by");
        self.update(|status| {
            status.state = RunnerState::Standby;
            status.lock_held = false;
        });
        Exit::LostLock
    }

    /// Changes the published status (waking watchers only on a change); returns the state
    /// before.
    fn update(&self, change: impl FnOnce(&mut RunnerStatus)) -> RunnerState {
        let mut before = RunnerState::Idle;
        self.status.send_if_modified(|status| {
            let old = status.clone();
            before = old.state;
            change(status);
            *status != old
        });
        before
    }
}

/// A runner that holds the lock, at `checkpoint`, with no failure pending.
fn running_at(status: &mut RunnerStatus, checkpoint: Position) {
    status.state = RunnerState::Running;
    status.lock_held = true;
    status.checkpoint = Some(checkpoint);
    status.last_error = None;
    status.consecutive_failures = 0;
}

/// Polls `shutdown` once without waiting.
fn is_done<S: Future<Output = ()>>(shutdown: Pin<&mut S>) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    matches!(shutdown.poll(&mut cx), Poll::Ready(()))
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    format!("projector panicked: {detail}")
}
