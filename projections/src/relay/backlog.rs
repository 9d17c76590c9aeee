//! One tenant's events from PostgreSQL in feed order: the backlog an SSE client missed,
//! read before it continues live from NATS.

use sqlx::{PgPool, Row};

use crate::error::FeedError;
use crate::event::{parse_tx_id, StoredEvent, EVENT_COLUMNS};
use crate::feed;
use crate::position::Position;

use super::envelope::Envelope;

/// The tenant of an event row `e`, as [`super::envelope::tenant_of`] decides it: a
/// rejection record's payload `tenantId`, else the metadata's `tenant_id` (strings only).
const TENANT_OF_E: &str = "COALESCE(\
     CASE WHEN e.aggregate_type = 'CommandRejection' \
               AND json_typeof(e.payload -> 'tenantId') = 'string' \
          THEN e.payload ->> 'tenantId' END, \
     CASE WHEN jsonb_typeof(e.metadata -> 'tenant_id') = 'string' \
          THEN e.metadata ->> 'tenant_id' END)";

/// A page of one tenant's backlog.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BacklogPage {
    /// The tenant's events after the requested position, in feed order.
    pub(crate) events: Vec<Envelope>,
    /// How far the scan got in feed order: every event (of any tenant) at or before this
    /// position and after the requested one is either in `events` or not the tenant's.
    pub(crate) covered: Position,
    /// Whether the scan reached the readable end of the log (fewer than `limit` events).
    pub(crate) complete: bool,
}

/// Up to `limit` of `tenant`'s committed events after `after` in feed order (gap-safe, as
/// [`feed::read_batch`]), and how far the scan covered. One statement, so the page and
/// the end of the log it reports come from one snapshot.
pub(crate) async fn read_page(
    pool: &PgPool,
    tenant: &str,
    after: Position,
    limit: i64,
) -> Result<BacklogPage, FeedError> {
    let limit = limit.max(1);
    let sql = format!(
        "WITH gate AS MATERIALIZED ( \
             SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin \
         ), head AS MATERIALIZED ( \
             SELECT e.tx_id, e.global_position FROM events e, gate \
             WHERE e.tx_id < gate.xmin \
             ORDER BY e.tx_id DESC, e.global_position DESC LIMIT 1 \
         ), page AS MATERIALIZED ( \
             SELECT e.* FROM events e, gate \
             WHERE (e.tx_id, e.global_position) > ($1::text::xid8, $2) \
               AND e.tx_id < gate.xmin \
               AND {TENANT_OF_E} = $3 \
             ORDER BY e.tx_id, e.global_position \
             LIMIT $4 \
         ) \
         SELECT {EVENT_COLUMNS}, \
                (SELECT head.tx_id::text FROM head) AS head_tx_id_text, \
                (SELECT head.global_position FROM head) AS head_global_position \
         FROM (SELECT 1) AS one LEFT JOIN page ON true \
         ORDER BY page.tx_id, page.global_position"
    );
    let rows = sqlx::query(&sql)
        .bind(after.tx_id.to_string())
        .bind(after.global_position)
        .bind(tenant)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    let mut events = Vec::with_capacity(rows.len());
    let mut last = None;
    let mut head = None;
    for row in &rows {
        if head.is_none() {
            if let Some(tx_id) = row.try_get::<Option<&str>, _>("head_tx_id_text")? {
                head = Some(Position::new(
                    parse_tx_id(tx_id)?,
                    row.try_get("head_global_position")?,
                ));
            }
        }
        if row.try_get::<Option<i64>, _>("global_position")?.is_none() {
            continue; // the one row of an empty page
        }
        let event = StoredEvent::from_row(row)?;
        last = Some(event.position());
        events.push(Envelope::from_stored(&event));
    }
    let full = i64::try_from(events.len()).unwrap_or(i64::MAX) >= limit;
    let covered = if full {
        last.unwrap_or(after)
    } else {
        head.map_or(after, |head| head.max(after))
    };
    Ok(BacklogPage {
        events,
        covered,
        complete: !full,
    })
}

/// Up to `limit` of `tenant`'s committed events after the event with global position
/// `after` (`None`: from the beginning), in feed order `(tx_id, global_position)`: what an
/// SSE client that last saw `after` has missed. The tenant is the metadata's `tenant_id`,
/// or for a rejection record its payload's `tenantId`. Fails with
/// [`FeedError::UnknownEvent`] if no committed event has that global position.
///
/// Feed order is not global-position order: page with the last envelope's global
/// position, never with "all positions greater than".
pub async fn backlog_after(
    pool: &PgPool,
    tenant: &str,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<Envelope>, FeedError> {
    let from = match after {
        Some(global_position) => feed::position_of(pool, global_position)
            .await?
            .ok_or(FeedError::UnknownEvent(global_position))?,
        None => Position::START,
    };
    Ok(read_page(pool, tenant, from, limit).await?.events)
}
