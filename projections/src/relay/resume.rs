//! The PostgreSQL → NATS seam for the SSE endpoint: an event stream for one tenant that
//! resumes after a client's `Last-Event-ID` from PostgreSQL and continues live from NATS,
//! losing and repeating nothing.
//!
//! The rule is documented on [`resume_stream`].

use std::collections::{HashSet, VecDeque};

use async_nats::jetstream;
use futures::stream::{self, BoxStream};
use futures::StreamExt as _;
use sqlx::PgPool;

use crate::feed;
use crate::position::Position;

use super::backlog::read_page;
use super::envelope::Envelope;
use super::error::{ResumeError, SubscribeError};
use super::settings::RelaySettings;
use super::subscribe::{last_sequence, ordered, stream_state, tenant_matches, Delivered};

/// Tuning of [`resume_stream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeOptions {
    /// Events per backlog query.
    pub page_size: i64,
    /// How far (in events of the tenant) a client may fall behind the live stream before
    /// it is disconnected with [`ResumeError::SlowConsumer`].
    pub max_pending: u64,
    /// How many recently sent live global positions are remembered to drop re-published
    /// duplicates.
    pub dedupe_window: usize,
}

impl Default for ResumeOptions {
    fn default() -> Self {
        Self {
            page_size: 500,
            max_pending: 10_000,
            dedupe_window: 4_096,
        }
    }
}

/// One tenant's events for an SSE client: `Ok` items in order (the backlog in feed order,
/// then live in relay order), each exactly once; an `Err` item is the last. The SSE `id`
/// of each event is its `globalPosition`.
pub type ResumeEvents = BoxStream<'static, Result<Envelope, ResumeError>>;

/// Resumes `tenant`'s events after `last_event_id` (the client's `Last-Event-ID`, a global
/// position; `None`: only new events). Fails before the first event if `last_event_id`
/// names no committed event or NATS does not answer, so the caller can answer with an
/// error status instead of an empty stream.
///
/// # How the seam works
///
/// 1. Resolve `Last-Event-ID` (a global position) to its feed position `P`.
/// 2. Note the stream's last sequence `L`: everything stored at or before `L` was relayed
///    before this moment, so the relay had read it from the feed, so it is committed and
///    readable, and the backlog read in step 3 (which starts later) sees it.
/// 3. Backlog: read the tenant's events after `P` from PostgreSQL in feed order, a page at a
///    time as the client consumes them, until a page reaches the readable end of the log.
///    `covered` is the feed position the scan reached: every event after `P` and up to
///    `covered` was sent (or is another tenant's), and the gap-safe feed guarantees none
///    can appear there later.
/// 4. Live: an ordered consumer from stream sequence `L + 1` (nothing relayed after step 2
///    is missed, however long the backlog took, as JetStream holds the messages meanwhile;
///    nothing is buffered here). A live event is dropped if its feed position (headers
///    `Flowable-Tx-Id` + global position) is at or before `covered` (sent by the backlog,
///    or before `P`: a client that got `P` from this stream has every event before it, as
///    the backlog is in feed order and the relay publishes in feed order), or if its
///    global position is among the last `dedupe_window` ones sent live (a re-publish after
///    JetStream's duplicate window).
///
/// Positions are compared as whole feed positions `(tx_id, global_position)`, never as
/// global positions alone: identity order is not commit order, so an event with a lower
/// global position can commit (and be relayed) after one with a higher.
///
/// Without `Last-Event-ID` the stream starts live at step 4 (only new events).
///
/// Memory is bounded: one backlog page, the pull consumer's batch, and the window of recent
/// positions. A client more than `max_pending` events behind the live stream gets
/// [`ResumeError::SlowConsumer`] and the stream ends; it reconnects with its
/// `Last-Event-ID` and catches up from PostgreSQL.
pub async fn resume_stream(
    pool: PgPool,
    js: jetstream::Context,
    settings: &RelaySettings,
    tenant: &str,
    last_event_id: Option<i64>,
    options: ResumeOptions,
) -> Result<ResumeEvents, ResumeError> {
    let after = match last_event_id {
        Some(global_position) => Some(
            feed::position_of(&pool, global_position)
                .await?
                .ok_or(ResumeError::UnknownLastEventId(global_position))?,
        ),
        None => None,
    };
    // Step 2: before any backlog read.
    let live_from = last_sequence(&js, settings).await? + 1;
    let phase = match after {
        Some(after) => Phase::Backlog {
            after,
            page: VecDeque::new(),
            complete: false,
        },
        None => Phase::StartLive,
    };
    let state = Resume {
        pool,
        js,
        settings: settings.clone(),
        tenant: tenant.to_owned(),
        recent: Recent::new(options.dedupe_window),
        options,
        live_from,
        covered: after,
        phase,
    };
    Ok(stream::unfold(state, Resume::next).boxed())
}

struct Resume {
    pool: PgPool,
    js: jetstream::Context,
    settings: RelaySettings,
    tenant: String,
    options: ResumeOptions,
    /// The first stream sequence the live part reads.
    live_from: u64,
    /// How far in feed order the client has everything (see the module docs).
    covered: Option<Position>,
    recent: Recent,
    phase: Phase,
}

enum Phase {
    Backlog {
        after: Position,
        page: VecDeque<Envelope>,
        complete: bool,
    },
    StartLive,
    Live(BoxStream<'static, Result<Delivered, SubscribeError>>),
    Done,
}

impl Resume {
    async fn next(mut self) -> Option<(Result<Envelope, ResumeError>, Self)> {
        loop {
            match &mut self.phase {
                Phase::Done => return None,
                Phase::Backlog {
                    after,
                    page,
                    complete,
                } => {
                    if let Some(envelope) = page.pop_front() {
                        return Some((Ok(envelope), self));
                    }
                    if *complete {
                        self.phase = Phase::StartLive;
                        continue;
                    }
                    match read_page(&self.pool, &self.tenant, *after, self.options.page_size).await
                    {
                        Ok(next) => {
                            *after = next.covered;
                            *complete = next.complete;
                            page.extend(next.events);
                            self.covered = Some(next.covered);
                        }
                        Err(error) => return self.fail(error.into()),
                    }
                }
                Phase::StartLive => {
                    match start_live(&self.js, &self.settings, &self.tenant, self.live_from).await {
                        Ok(live) => self.phase = Phase::Live(live),
                        Err(error) => return self.fail(error),
                    }
                }
                Phase::Live(live) => {
                    let delivered = match live.next().await {
                        None => {
                            self.phase = Phase::Done;
                            return None;
                        }
                        Some(Ok(delivered)) => delivered,
                        Some(Err(SubscribeError::Decode {
                            stream_sequence,
                            source,
                        })) => {
                            tracing::warn!(stream_sequence, error = %source, "skipping a message that is not an event envelope");
                            continue;
                        }
                        Some(Err(error)) => return self.fail(error.into()),
                    };
                    if delivered.pending > self.options.max_pending {
                        let error = ResumeError::SlowConsumer {
                            pending: delivered.pending,
                            limit: self.options.max_pending,
                        };
                        return self.fail(error);
                    }
                    if let Some(envelope) = self.admit(delivered) {
                        return Some((Ok(envelope), self));
                    }
                }
            }
        }
    }

    /// The envelope if the client should get it (see the module docs).
    fn admit(&mut self, delivered: Delivered) -> Option<Envelope> {
        let envelope = delivered.received.envelope;
        if !tenant_matches(Some(&self.tenant), &envelope) {
            return None;
        }
        let already_covered = match (self.covered, delivered.received.position) {
            (Some(covered), Some(position)) => position <= covered,
            _ => false,
        };
        if already_covered || !self.recent.insert(envelope.global_position) {
            return None;
        }
        Some(envelope)
    }

    fn fail(mut self, error: ResumeError) -> Option<(Result<Envelope, ResumeError>, Self)> {
        self.phase = Phase::Done;
        Some((Err(error), self))
    }
}

/// The live consumer from `live_from`, unless retention has removed messages since. (A
/// free function: the future must be `Send`, and `Resume` holds a stream that is not
/// `Sync`.)
async fn start_live(
    js: &jetstream::Context,
    settings: &RelaySettings,
    tenant: &str,
    live_from: u64,
) -> Result<BoxStream<'static, Result<Delivered, SubscribeError>>, ResumeError> {
    let (live, _) = ordered(js, settings, Some(tenant), Some(live_from)).await?;
    let state = stream_state(js, settings).await?;
    if state.first_sequence > live_from {
        return Err(ResumeError::Expired {
            needed: live_from,
            first: state.first_sequence,
        });
    }
    Ok(live)
}

/// The last `capacity` global positions sent live.
struct Recent {
    capacity: usize,
    order: VecDeque<i64>,
    set: HashSet<i64>,
}

impl Recent {
    fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            order: VecDeque::with_capacity(capacity),
            set: HashSet::with_capacity(capacity),
        }
    }

    /// `false` if `position` was sent recently.
    fn insert(&mut self, position: i64) -> bool {
        if !self.set.insert(position) {
            return false;
        }
        self.order.push_back(position);
        if self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::Recent;

    #[test]
    fn recent_positions_are_a_bounded_window() {
        let mut recent = Recent::new(2);
        assert!(recent.insert(5));
        assert!(!recent.insert(5));
        assert!(recent.insert(3));
        assert!(recent.insert(9));
        // 5 fell out of the window.
        assert!(recent.insert(5));
        assert!(!recent.insert(9));
    }
}
