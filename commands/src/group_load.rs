//! Group load: the stream loads of concurrent commands (models the state cache does not
//! hold) read by one query, each stream's snapshot and the events after it.
//!
//! Why: under load a command on a model outside the state cache spent a statement of its
//! own on the load, as much database time as its append (docs/performance.md, "Group
//! commit"). Read together, a group pays the statement once; the per-stream work (two index
//! probes) stays.

use sqlx::PgPool;
use tokio::sync::oneshot;

use crate::groups::{GroupRules, Groups};
use crate::store::{split_stream, StoredSnapshot, StreamEvent};

/// One stream as the fold needs it: its snapshot, if any, and the events after it.
pub(crate) type Stream = (Option<StoredSnapshot>, Vec<StreamEvent>);

/// Two readers, as for appends; a stream asked for twice waits for the next group (one
/// answer per stream and group keeps the mapping simple; it is rare).
const RULES: GroupRules<Pending> = GroupRules {
    workers: 2,
    max_items: 64,
    apart: |member, item| member.key == item.key,
};

/// Every stream of the group with its number `n` (1-based, the order of the arrays): its
/// snapshot of the schema asked for (`part` 0), then its events after the snapshot, or all
/// of them (`part` 1). The events are read per stream (`LATERAL`), by the stream's key.
const LOAD: &str = "WITH k AS (
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])
                  WITH ORDINALITY AS k(aggregate_type, aggregate_id, schema, n)),
     s AS MATERIALIZED (
         SELECT k.n, s.sequence, s.payload
           FROM k JOIN aggregate_snapshots s
             ON s.aggregate_type = k.aggregate_type AND s.aggregate_id = k.aggregate_id
            AND s.schema = k.schema)
     SELECT s.n, NULL::text, NULL::text, s.sequence, s.payload::text, 0 AS part FROM s
     UNION ALL
     SELECT k.n, e.event_type, e.event_version, e.sequence, e.payload::text, 1
       FROM k CROSS JOIN LATERAL (
            SELECT event_type, event_version, sequence, payload FROM events e
             WHERE e.aggregate_type = k.aggregate_type AND e.aggregate_id = k.aggregate_id
               AND e.sequence > coalesce((SELECT s.sequence FROM s WHERE s.n = k.n), 0)
            ) e
     ORDER BY 1, part, sequence";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    aggregate_type: String,
    aggregate_id: String,
    schema: String,
}

struct Pending {
    key: Key,
    reply: oneshot::Sender<Result<Stream, sqlx::Error>>,
}

/// The queue of one pool's stream loads.
#[derive(Debug, Clone)]
pub(crate) struct GroupLoad {
    pool: PgPool,
    queue: Groups<Pending>,
}

impl GroupLoad {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            queue: Groups::new(),
        }
    }

    /// Loads one stream with whatever other loads are waiting.
    pub(crate) async fn load(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        schema: &str,
    ) -> Result<Stream, sqlx::Error> {
        let key = Key {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            schema: schema.to_owned(),
        };
        let (reply, answer) = oneshot::channel();
        let pool = self.pool.clone();
        let queued = self
            .queue
            .push(Pending { key, reply }, &RULES, move |group| {
                load_group(pool.clone(), group)
            });
        match queued {
            Ok(()) => answer.await.unwrap_or(Err(sqlx::Error::PoolClosed)),
            // No reader left to take it: read it here.
            Err(pending) => read_one(&self.pool, &pending.key).await,
        }
    }
}

async fn load_group(pool: PgPool, group: Vec<Pending>) {
    let keys: Vec<&Key> = group.iter().map(|p| &p.key).collect();
    match read(&pool, &keys).await {
        Ok(streams) => {
            for (pending, stream) in group.into_iter().zip(streams) {
                let _ = pending.reply.send(Ok(stream));
            }
        }
        Err(error) if group.len() == 1 => {
            if let Some(pending) = group.into_iter().next() {
                let _ = pending.reply.send(Err(error));
            }
        }
        // Failed as a whole: each stream on its own, for its own answer.
        Err(_) => {
            for pending in group {
                let result = read_one(&pool, &pending.key).await;
                let _ = pending.reply.send(result);
            }
        }
    }
}

async fn read_one(pool: &PgPool, key: &Key) -> Result<Stream, sqlx::Error> {
    let mut streams = read(pool, &[key]).await?;
    Ok(streams.pop().unwrap_or_default())
}

/// The streams of `keys`, in their order.
async fn read(pool: &PgPool, keys: &[&Key]) -> Result<Vec<Stream>, sqlx::Error> {
    let rows: Vec<(i64, Option<String>, Option<String>, i64, String, i32)> = sqlx::query_as(LOAD)
        .bind(
            keys.iter()
                .map(|k| k.aggregate_type.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            keys.iter()
                .map(|k| k.aggregate_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(keys.iter().map(|k| k.schema.as_str()).collect::<Vec<_>>())
        .fetch_all(pool)
        .await?;
    let mut per_stream: Vec<Vec<_>> = keys.iter().map(|_| Vec::new()).collect();
    for (n, event_type, event_version, sequence, payload, _) in rows {
        let slot = usize::try_from(n - 1)
            .ok()
            .and_then(|i| per_stream.get_mut(i))
            .ok_or_else(|| sqlx::Error::Protocol(format!("a load returned stream {n}")))?;
        slot.push((event_type, event_version, sequence, payload));
    }
    Ok(per_stream.into_iter().map(split_stream).collect())
}
