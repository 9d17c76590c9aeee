//! The in-process event bus of the embedded backend (instead of NATS): the loop publishes
//! each applied batch on a bounded `broadcast` channel, and [`SqliteProjections::subscribe`]
//! gives the SSE endpoint one tenant's events: the stored backlog after `Last-Event-ID`,
//! then live, with no gap and no duplicate.
//!
//! The seam: subscribe to the channel first, then read the backlog from `events` (global
//! position order is commit order here). Anything published after the subscription is
//! buffered in the channel; anything stored before the backlog read is in the backlog. Live
//! items at or below the last position sent are dropped, since the backlog had them.

use std::collections::VecDeque;

use futures::stream::{self, StreamExt as _};
use sqlx::SqlitePool;
use tokio::sync::broadcast::{self, error::RecvError};

use super::events;
use super::projector::SqliteProjections;
use crate::error::FeedError;
use crate::relay::{Envelope, ResumeError, ResumeEvents};

/// Events per backlog query.
const PAGE: i64 = 500;

impl SqliteProjections {
    /// `tenant`'s events after `last_event_id` (a global position; `None`: only new
    /// events). Fails before the first item if `last_event_id` names no stored event. A
    /// subscriber that falls more than the bus capacity behind gets a final
    /// [`ResumeError::SlowConsumer`] item; it reconnects with its `Last-Event-ID`.
    pub async fn subscribe(
        &self,
        tenant: &str,
        last_event_id: Option<i64>,
    ) -> Result<ResumeEvents, ResumeError> {
        // Before the backlog read: see the module docs.
        let live = self.inner.bus.subscribe();
        if let Some(id) = last_event_id {
            let mut conn = self.inner.pool.acquire().await.map_err(FeedError::from)?;
            if !events::exists(&mut conn, id)
                .await
                .map_err(FeedError::from)?
            {
                return Err(ResumeError::UnknownLastEventId(id));
            }
        }
        let state = Subscription {
            pool: self.inner.pool.clone(),
            tenant: tenant.to_owned(),
            live,
            limit: u64::try_from(self.inner.config.bus_capacity).unwrap_or(u64::MAX),
            sent: last_event_id,
            phase: match last_event_id {
                Some(_) => Phase::Backlog(VecDeque::new()),
                None => Phase::Live,
            },
        };
        Ok(stream::unfold(state, Subscription::next).boxed())
    }
}

struct Subscription {
    pool: SqlitePool,
    tenant: String,
    live: broadcast::Receiver<Envelope>,
    limit: u64,
    /// The global position of the last event sent (or `Last-Event-ID`).
    sent: Option<i64>,
    phase: Phase,
}

enum Phase {
    /// Sending a page of the backlog; an empty page is read again.
    Backlog(VecDeque<Envelope>),
    /// The backlog's last page was short: the next page would be empty.
    LastPage(VecDeque<Envelope>),
    Live,
    Done,
}

impl Subscription {
    async fn next(mut self) -> Option<(Result<Envelope, ResumeError>, Self)> {
        loop {
            match &mut self.phase {
                Phase::Done => return None,
                Phase::Backlog(page) | Phase::LastPage(page) => {
                    if let Some(envelope) = page.pop_front() {
                        self.sent = Some(envelope.global_position);
                        return Some((Ok(envelope), self));
                    }
                    if matches!(self.phase, Phase::LastPage(_)) {
                        self.phase = Phase::Live;
                        continue;
                    }
                    match self.read_page().await {
                        Ok(phase) => self.phase = phase,
                        Err(error) => return self.fail(error.into()),
                    }
                }
                Phase::Live => match self.live.recv().await {
                    Ok(envelope) => {
                        let seen = self
                            .sent
                            .is_some_and(|sent| envelope.global_position <= sent);
                        if seen || envelope.tenant_id.as_deref() != Some(self.tenant.as_str()) {
                            continue;
                        }
                        self.sent = Some(envelope.global_position);
                        return Some((Ok(envelope), self));
                    }
                    Err(RecvError::Lagged(missed)) => {
                        let error = ResumeError::SlowConsumer {
                            pending: missed,
                            limit: self.limit,
                        };
                        return self.fail(error);
                    }
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }

    async fn read_page(&self) -> Result<Phase, FeedError> {
        let after = self.sent.unwrap_or(0);
        let mut conn = self.pool.acquire().await?;
        let page = events::tenant_page(&mut conn, &self.tenant, after, PAGE).await?;
        let full = i64::try_from(page.len()).unwrap_or(i64::MAX) >= PAGE;
        let page = page.iter().map(Envelope::from_stored).collect();
        Ok(if full {
            Phase::Backlog(page)
        } else {
            Phase::LastPage(page)
        })
    }

    fn fail(mut self, error: ResumeError) -> Option<(Result<Envelope, ResumeError>, Self)> {
        self.phase = Phase::Done;
        Some((Err(error), self))
    }
}
