//! The gap-safe event feed: reads committed events in `(tx_id, global_position)` order and
//! never skips one, and wakes its reader on `NOTIFY events_appended` with polling as a
//! fallback.
//!
//! Identity order is not commit order and rolled-back inserts leave gaps, so a reader that
//! follows `global_position` alone can pass an event whose transaction commits later. The
//! feed orders by the appending transaction's id and reads only transactions older than
//! every transaction still open (`tx_id < pg_snapshot_xmin(pg_current_snapshot())`): such a
//! transaction can no longer add events, so nothing can appear behind the reader. The price
//! is a stall: while any older transaction is open (in any database of the cluster, as
//! xids are cluster-wide), newer committed events wait, and the reader re-checks on the
//! next notification or poll.

use std::time::Duration;

use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgExecutor, PgPool, Postgres, Row};

use crate::error::FeedError;
use crate::event::{parse_tx_id, StoredEvent, EVENT_COLUMNS};
use crate::listener::{Wake, Wakeup};
use crate::position::Position;

/// How often a waiting reader re-reads when no notification arrives.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Up to `limit` committed events after `after`, in feed order. Returns fewer (or none)
/// while an older transaction is still open, even if later events are committed.
pub async fn read_batch<'e>(
    executor: impl PgExecutor<'e>,
    after: Position,
    limit: i64,
) -> Result<Vec<StoredEvent>, FeedError> {
    read_batch_within(executor, after, limit, i64::MAX).await
}

/// As [`read_batch`], and the batch also ends once its payloads' stored size reaches
/// `max_bytes` (see [`read_next_within`]). One plain statement.
pub async fn read_batch_within<'e>(
    executor: impl PgExecutor<'e>,
    after: Position,
    limit: i64,
    max_bytes: i64,
) -> Result<Vec<StoredEvent>, FeedError> {
    // The running sum is computed on the index scan's order, so neither it nor the outer
    // ORDER BY sorts (a sort of 5 000 rows with their payloads spills to disk). The text
    // copy of tx_id has its own alias: an ORDER BY on an output column named tx_id would
    // sort xids as text ("10" before "9").
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM ( \
             SELECT e.*, {BYTES_BEFORE} FROM events e \
             WHERE (e.tx_id, e.global_position) > ($1::text::xid8, $2) \
               AND e.tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
             ORDER BY e.tx_id, e.global_position \
             LIMIT $3 \
         ) events \
         WHERE events.bytes_before < $4 \
         ORDER BY events.tx_id, events.global_position"
    );
    let rows = page_query(&sql, after, limit)
        .bind(max_bytes.max(1))
        .fetch_all(executor)
        .await?;
    rows.iter().map(StoredEvent::from_row).collect()
}

/// The stored payload bytes of the events before this one in the page (`e`, ordered by
/// feed order): an event is in a batch with budget `b` while this is below `b`. A `ROWS`
/// frame: the order is unique, so it sums the same as the default `RANGE` frame, without
/// looking for peers at every row (≈ 0.2 s less PostgreSQL CPU per 1 000 000 events).
const BYTES_BEFORE: &str = "sum(pg_column_size(e.payload)) \
         OVER (ORDER BY e.tx_id, e.global_position ROWS UNBOUNDED PRECEDING) \
     - pg_column_size(e.payload) AS bytes_before";

/// A page statement bound as `$1`, `$2` = `after`, `$3` = `limit`.
fn page_query(sql: &str, after: Position, limit: i64) -> Query<'_, Postgres, PgArguments> {
    sqlx::query(sql)
        .bind(after.tx_id_text())
        .bind(after.global_position)
        .bind(limit.max(0))
}

/// A batch read by [`read_next`].
#[derive(Debug)]
pub struct Batch {
    /// Up to the limit of committed events, in feed order.
    pub events: Vec<StoredEvent>,
    /// Whether committed events after these are held back by the xmin gate: a later read
    /// will find them without any further notification, once the older transactions that
    /// hold the gate end (their end notifies nobody).
    pub held_back: bool,
    /// Whether the byte budget ended the batch before the limit: the events after it are
    /// readable at once.
    pub truncated: bool,
    /// The value of the consumer's expression read with the batch ([`read_next_also`]).
    pub also: Option<String>,
}

/// As [`read_batch`], and whether the gate holds back committed events after the batch.
/// One statement, so both answers come from one snapshot: a reader told `held_back: false`
/// has seen every committed event, and anything committed later notifies it.
pub async fn read_next<'e>(
    executor: impl PgExecutor<'e>,
    after: Position,
    limit: i64,
) -> Result<Batch, FeedError> {
    read_next_within(executor, after, limit, i64::MAX).await
}

/// As [`read_next`], and the batch also ends once its payloads' stored size reaches
/// `max_bytes` (the event that reaches it is the last; the first event always comes).
///
/// Why: a decoded event takes far more memory than its stored JSON (a `serde_json::Value`
/// tree per payload, and a projector's working copies of it), so 500 events carrying a
/// 16 KB editor document each held ≈ 400 MiB during a catch-up. The stored size
/// (`pg_column_size`, compressed when PostgreSQL compressed it) costs PostgreSQL nothing
/// to compute, unlike the text length.
pub async fn read_next_within<'e>(
    executor: impl PgExecutor<'e>,
    after: Position,
    limit: i64,
    max_bytes: i64,
) -> Result<Batch, FeedError> {
    read_next_also(executor, after, limit, max_bytes, None).await
}

/// As [`read_next_within`], and with `also`, a consumer's scalar SQL expression (text)
/// evaluated in the same statement, so on the same snapshot: it may read the page as
/// `limited` (the events up to the limit, `bytes_before` below `$4` for those in the
/// batch). Its value is [`Batch::also`]. A projector reads what its batch needs this way
/// instead of in a round trip of its own ([`crate::Projector::read_also`]).
pub async fn read_next_also<'e>(
    executor: impl PgExecutor<'e>,
    after: Position,
    limit: i64,
    max_bytes: i64,
    also: Option<&str>,
) -> Result<Batch, FeedError> {
    // `held` always yields one row, so the flag arrives even with an empty page; the
    // page's columns are then NULL. It looks at the last visible event in feed order
    // alone (one backward index step): "some event after `after` at or above the gate"
    // is a lower bound in that order, so the last event meets it if any does. (An
    // `EXISTS` over the range instead walked every event of a catch-up backlog, all below
    // the gate, on every read.)
    // `also` comes once, on the first row (the page's rows repeat the one-row items).
    let (also_item, also_column, also_join) = match also {
        Some(expression) => (
            format!(", also AS MATERIALIZED (SELECT ({expression}) AS also)"),
            "CASE WHEN row_number() OVER (ORDER BY page.tx_id, page.global_position) = 1 \
             THEN also.also END AS also, ",
            " CROSS JOIN also",
        ),
        None => (String::new(), "", ""),
    };
    let sql = format!(
        "WITH gate AS MATERIALIZED ( \
             SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin \
         ), limited AS MATERIALIZED ( \
             SELECT e.*, {BYTES_BEFORE} FROM events e, gate \
             WHERE (e.tx_id, e.global_position) > ($1::text::xid8, $2) \
               AND e.tx_id < gate.xmin \
             ORDER BY e.tx_id, e.global_position \
             LIMIT $3 \
         ), cut AS MATERIALIZED ( \
             SELECT EXISTS (SELECT 1 FROM limited WHERE bytes_before >= $4) AS truncated \
         ), held AS MATERIALIZED ( \
             SELECT EXISTS ( \
                 SELECT 1 FROM ( \
                     SELECT tx_id, global_position FROM events \
                     ORDER BY tx_id DESC, global_position DESC \
                     LIMIT 1 \
                 ) last, gate \
                 WHERE (last.tx_id, last.global_position) > ($1::text::xid8, $2) \
                   AND last.tx_id >= gate.xmin \
             ) AS held_back \
         ){also_item} \
         SELECT held.held_back, cut.truncated, {also_column}{EVENT_COLUMNS} \
         FROM held CROSS JOIN cut{also_join} LEFT JOIN limited page ON page.bytes_before < $4 \
         ORDER BY page.tx_id, page.global_position"
    );
    let rows = page_query(&sql, after, limit)
        .bind(max_bytes.max(1))
        .fetch_all(executor)
        .await?;
    let (held_back, truncated) = match rows.first() {
        Some(row) => (row.try_get("held_back")?, row.try_get("truncated")?),
        None => (false, false),
    };
    let also = match (also, rows.first()) {
        (Some(_), Some(row)) => row.try_get("also")?,
        _ => None,
    };
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.try_get::<Option<i64>, _>("global_position")?.is_some() {
            events.push(StoredEvent::from_row(row)?);
        }
    }
    Ok(Batch {
        events,
        held_back,
        truncated,
        also,
    })
}

/// The feed position of the committed event with this global position, `None` if there is
/// none (never written, rolled back, or not committed yet).
pub async fn position_of<'e>(
    executor: impl PgExecutor<'e>,
    global_position: i64,
) -> Result<Option<Position>, FeedError> {
    let row =
        sqlx::query("SELECT tx_id::text AS tx_id_text FROM events WHERE global_position = $1")
            .bind(global_position)
            .fetch_optional(executor)
            .await?;
    row.map(|row| {
        Ok(Position::new(
            parse_tx_id(row.try_get("tx_id_text")?)?,
            global_position,
        ))
    })
    .transpose()
}

/// The feed position of an aggregate's latest committed event, `None` if it has none.
/// After a command returns, waiting for this position waits for all of its events.
pub async fn last_position_of<'e>(
    executor: impl PgExecutor<'e>,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Option<Position>, FeedError> {
    let row = sqlx::query(
        "SELECT tx_id::text AS tx_id_text, global_position FROM events \
         WHERE aggregate_type = $1 AND aggregate_id = $2 \
         ORDER BY sequence DESC LIMIT 1",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_optional(executor)
    .await?;
    row.map(|row| {
        Ok(Position::new(
            parse_tx_id(row.try_get("tx_id_text")?)?,
            row.try_get("global_position")?,
        ))
    })
    .transpose()
}

/// How many committed events come after `after` in feed order: a consumer's lag when
/// `after` is its checkpoint. Counts events the xmin gate still holds back, too.
pub async fn count_after<'e>(
    executor: impl PgExecutor<'e>,
    after: Position,
) -> Result<i64, FeedError> {
    let count = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE (tx_id, global_position) > ($1::text::xid8, $2)",
    )
    .bind(after.tx_id_text())
    .bind(after.global_position)
    .fetch_one(executor)
    .await?;
    Ok(count)
}

/// How far a consumer at `after` is behind: the committed events after it, and the age in
/// seconds (by the database's clock) of the oldest of them (`None` when caught up).
pub async fn lag_after<'e>(
    executor: impl PgExecutor<'e>,
    after: Position,
) -> Result<(i64, Option<f64>), FeedError> {
    let lag = sqlx::query_as(
        "SELECT count(*), EXTRACT(EPOCH FROM now() - min(recorded_at))::float8 FROM events
          WHERE (tx_id, global_position) > ($1::text::xid8, $2)",
    )
    .bind(after.tx_id_text())
    .bind(after.global_position)
    .fetch_one(executor)
    .await?;
    Ok(lag)
}

/// The end of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The last event the feed can deliver now (behind the xmin gate), if any.
    pub readable: Option<Position>,
    /// The highest committed global position, if any (it may still be held back).
    pub max_global_position: Option<i64>,
}

/// Where the log ends now.
pub async fn head<'e>(executor: impl PgExecutor<'e>) -> Result<Head, FeedError> {
    let row = sqlx::query(
        "SELECT (SELECT max(global_position) FROM events) AS max_global_position, \
                last.tx_id::text AS tx_id_text, last.global_position \
         FROM (SELECT 1) AS one \
         LEFT JOIN LATERAL ( \
             SELECT tx_id, global_position FROM events \
             WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
             ORDER BY tx_id DESC, global_position DESC LIMIT 1 \
         ) AS last ON true",
    )
    .fetch_one(executor)
    .await?;
    let readable = match row.try_get::<Option<&str>, _>("tx_id_text")? {
        Some(tx_id) => Some(Position::new(
            parse_tx_id(tx_id)?,
            row.try_get("global_position")?,
        )),
        None => None,
    };
    Ok(Head {
        readable,
        max_global_position: row.try_get("max_global_position")?,
    })
}

/// A reader of the event log that can wait for more: one per consumer, as it owns a
/// `LISTEN` connection (outside the pool it is given, so it never starves the pool).
pub struct Feed {
    pool: PgPool,
    wakeup: Wakeup,
}

impl Feed {
    /// A feed over `pool`'s database, polling every [`DEFAULT_POLL_INTERVAL`] when no
    /// notification arrives. Connects its listener on first use.
    pub fn new(pool: PgPool) -> Self {
        Self::with_poll_interval(pool, DEFAULT_POLL_INTERVAL)
    }

    /// A feed that polls every `poll_interval` when no notification arrives.
    pub fn with_poll_interval(pool: PgPool, poll_interval: Duration) -> Self {
        let wakeup = Wakeup::new(&pool, poll_interval);
        Self { pool, wakeup }
    }

    /// A feed that does not listen for notifications: it wakes every `poll_interval`.
    /// For a consumer whose readers do not need it fresh: under load it reads once per
    /// interval instead of once per notified burst, and PostgreSQL delivers no notification
    /// to it per append.
    pub fn polling(pool: PgPool, poll_interval: Duration) -> Self {
        let wakeup = Wakeup::polling(&pool, poll_interval);
        Self { pool, wakeup }
    }

    /// The pool the feed reads with.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Up to `limit` events after `after` (see [`read_batch`]).
    pub async fn read_after(
        &self,
        after: Position,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, FeedError> {
        read_batch(&self.pool, after, limit).await
    }

    /// Starts listening now, so a reader that reads and then waits misses no notification
    /// sent in between. Best effort: without a listener the feed polls.
    pub async fn listen(&mut self) -> bool {
        self.wakeup.ensure_listening().await
    }

    /// Returns when new events may be readable: on a notification, after the poll interval,
    /// or at once after (re)connecting the listener (notifications may have been missed).
    /// Never fails: without a listener it sleeps one poll interval.
    pub async fn wait_for_more(&mut self) -> Wake {
        self.wakeup.wait().await
    }

    /// The newest appending transaction the last [`Self::wait_for_more`] was notified of,
    /// if it returned [`Wake::Notified`] and every notification named its transaction. A
    /// reader whose position is in a later transaction has read all of their events.
    pub fn notified_tx(&self) -> Option<u64> {
        self.wakeup.notified_tx()
    }

    /// As [`Self::wait_for_more`] for a reader at `after`, passing over notifications that
    /// only name transactions before `after`'s: their events are read already (a busy
    /// reader often gets the notification after reading its events).
    pub async fn wait_for_news(&mut self, after: Position) -> Wake {
        loop {
            let wake = self.wait_for_more().await;
            let stale =
                wake == Wake::Notified && self.notified_tx().is_some_and(|tx| tx < after.tx_id);
            if !stale {
                return wake;
            }
        }
    }

    /// The next non-empty batch after `after`, waiting as long as it takes. Database errors
    /// are returned; the caller decides whether to retry.
    pub async fn next_batch(
        &mut self,
        after: Position,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, FeedError> {
        self.listen().await;
        loop {
            let events = self.read_after(after, limit).await?;
            if !events.is_empty() {
                return Ok(events);
            }
            self.wait_for_news(after).await;
        }
    }

    /// See [`head`].
    pub async fn head(&self) -> Result<Head, FeedError> {
        head(&self.pool).await
    }

    /// See [`count_after`].
    pub async fn lag(&self, after: Position) -> Result<i64, FeedError> {
        count_after(&self.pool, after).await
    }

    /// See [`position_of`].
    pub async fn position_of(&self, global_position: i64) -> Result<Option<Position>, FeedError> {
        position_of(&self.pool, global_position).await
    }
}
