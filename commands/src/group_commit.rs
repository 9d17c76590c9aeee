//! Group commit: the appends of concurrent commands on different streams written by one
//! statement, in one transaction.
//!
//! Why: every append's transaction takes PostgreSQL's database-wide `NOTIFY` lock before
//! it commits (the `events_appended` trigger) and holds it until its commit record is
//! flushed, so appends commit one after another, each with its own WAL flush, and each
//! costs the database a statement, a commit and a notification of its own. Written
//! together, a group pays for those once (docs/performance.md, "Group commit").
//!
//! How: an append becomes a [`Pending`] commit on a [`Groups`] queue. Two writer tasks take
//! what has queued, up to 64 commits of distinct streams, and write them with one
//! statement; a commit arriving while they write waits for the next group, so a lone
//! command is written at once and a group forms only under load. Each commit keeps its own
//! checks: it is written only if its first sequence is 1 or follows a stored event, and a
//! commit that is not written is a conflict for its command alone. A group that fails as a
//! whole (a unique violation: another writer took a sequence) is written again commit by
//! commit, so each command gets its own answer.
//!
//! The writers have connections of their own, which plan the statement once
//! ([`writer_pool`]).

use std::collections::HashMap;

use sqlx::PgPool;
use tokio::sync::oneshot;

use crate::groups::{GroupRules, Groups};
use crate::history::StorePosition;
use crate::store::AppendError;

/// Two writers: while one group's commit waits for its WAL flush, the next one is already
/// being written. A second commit of a stream already in the group continues the first,
/// which the statement's check could not see yet: it starts the next group.
const RULES: GroupRules<Pending> = GroupRules {
    workers: 2,
    max_items: 64,
    apart: |member, item| member.commit.stream() == item.commit.stream(),
};

/// One statement, one implicit transaction, every commit of the group; the statement-level
/// `NOTIFY` trigger fires once. `global_position`, `tx_id` and `recorded_at` take their
/// defaults (migrations/0001). JSON travels as text (serialized once, by the caller) and
/// the transaction id as text (sqlx has no `xid8` type).
///
/// A commit must continue its stream: its first sequence is 1 or follows a stored event
/// (an index probe), else none of its events is written. The unique key stops a writer
/// whose state is behind the store; this stops one whose state is ahead of it (a cached
/// state after the database was restored from a backup under a running server).
const APPEND: &str = "INSERT INTO events
        (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
     SELECT e.aggregate_type, e.aggregate_id, e.sequence, e.event_type, e.event_version,
            e.payload::json, e.metadata::jsonb
       FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[],
                   $7::text[], $8::text[])
            WITH ORDINALITY AS e(aggregate_type, aggregate_id, first_sequence, sequence,
                                 event_type, event_version, payload, metadata, n)
      WHERE e.first_sequence = 1
         OR EXISTS (SELECT FROM events p
                     WHERE p.aggregate_type = e.aggregate_type
                       AND p.aggregate_id = e.aggregate_id
                       AND p.sequence = e.first_sequence - 1)
      ORDER BY e.n
     RETURNING aggregate_type, aggregate_id, tx_id::text, global_position";

/// One command's commit: one stream's consecutive events, JSON already serialized.
#[derive(Debug)]
pub(crate) struct Commit {
    pub(crate) aggregate_type: String,
    pub(crate) aggregate_id: String,
    pub(crate) events: Vec<CommitEvent>,
}

#[derive(Debug)]
pub(crate) struct CommitEvent {
    pub(crate) sequence: i64,
    pub(crate) event_type: String,
    pub(crate) event_version: String,
    pub(crate) payload: String,
    pub(crate) metadata: String,
}

impl Commit {
    fn stream(&self) -> (&str, &str) {
        (&self.aggregate_type, &self.aggregate_id)
    }
}

type Reply = oneshot::Sender<Result<StorePosition, AppendError>>;

struct Pending {
    commit: Commit,
    reply: Reply,
}

/// The queue of one pool's appends.
#[derive(Debug, Clone)]
pub(crate) struct GroupCommit {
    pool: PgPool,
    queue: Groups<Pending>,
}

/// Connections of the writers: the two of [`RULES`], and one for a commit written where no
/// writer is left (see [`GroupCommit::append`]).
const WRITER_CONNECTIONS: u32 = 3;

impl GroupCommit {
    /// Appends on connections of their own to `pool`'s database (see [`writer_pool`]).
    pub(crate) fn new(pool: &PgPool) -> Self {
        Self {
            pool: writer_pool(pool),
            queue: Groups::new(),
        }
    }

    /// Appends `commit` with whatever other commits are waiting, and answers with where
    /// its last event landed.
    pub(crate) async fn append(&self, commit: Commit) -> Result<StorePosition, AppendError> {
        let (reply, answer) = oneshot::channel();
        let pool = self.pool.clone();
        let queued = self
            .queue
            .push(Pending { commit, reply }, &RULES, move |group| {
                write_group(pool.clone(), group)
            });
        match queued {
            Ok(()) => match answer.await {
                Ok(result) => result,
                // The writers are gone (their runtime shut down): nothing was written.
                Err(_) => Err(AppendError::Store(sqlx::Error::PoolClosed)),
            },
            // No writer left to take it: write it here.
            Err(pending) => write_one(&self.pool, &pending.commit).await,
        }
    }
}

/// A pool like `pool` whose connections always use the generic plan of a prepared
/// statement. Why: the append's arrays make a custom plan look cheaper (the planner sees
/// their lengths), so PostgreSQL planned [`APPEND`] anew on every execution, which took it
/// ≈ 116 µs, twice the statement's own execution (`pg_stat_statements` with
/// `track_planning`; docs/performance.md, "Editor JSON as text; plans made once"). The
/// generic plan is the same (the unnest, the continuity probe by primary key, the insert),
/// planned once per connection.
fn writer_pool(pool: &PgPool) -> PgPool {
    pg_support::generic_plan_pool(pool, WRITER_CONNECTIONS)
}

async fn write_group(pool: PgPool, group: Vec<Pending>) {
    let commits: Vec<&Commit> = group.iter().map(|p| &p.commit).collect();
    match write(&pool, &commits).await {
        Ok(positions) => {
            for (pending, position) in group.into_iter().zip(positions) {
                let _ = pending.reply.send(position.ok_or(AppendError::Conflict));
            }
        }
        Err(error) if group.len() == 1 => {
            if let Some(pending) = group.into_iter().next() {
                let _ = pending.reply.send(Err(AppendError::from_sqlx(error)));
            }
        }
        // Failed as a whole: each commit on its own, for its own answer.
        Err(_) => {
            for pending in group {
                let result = write_one(&pool, &pending.commit).await;
                let _ = pending.reply.send(result);
            }
        }
    }
}

/// One commit alone.
async fn write_one(pool: &PgPool, commit: &Commit) -> Result<StorePosition, AppendError> {
    match write(pool, &[commit]).await {
        Ok(mut positions) => positions.pop().flatten().ok_or(AppendError::Conflict),
        Err(error) => Err(AppendError::from_sqlx(error)),
    }
}

/// Writes `commits` (of distinct streams) with one statement; each commit's position, or
/// `None` for a commit that did not continue its stream (nothing of it written).
async fn write(
    pool: &PgPool,
    commits: &[&Commit],
) -> Result<Vec<Option<StorePosition>>, sqlx::Error> {
    let rows = commits.iter().map(|c| c.events.len()).sum();
    let mut aggregate_type = Vec::with_capacity(rows);
    let mut aggregate_id = Vec::with_capacity(rows);
    let mut first_sequence = Vec::with_capacity(rows);
    let mut sequence = Vec::with_capacity(rows);
    let mut event_type = Vec::with_capacity(rows);
    let mut event_version = Vec::with_capacity(rows);
    let mut payload = Vec::with_capacity(rows);
    let mut metadata = Vec::with_capacity(rows);
    for commit in commits {
        let first = commit.events.first().map_or(0, |e| e.sequence);
        for event in &commit.events {
            aggregate_type.push(commit.aggregate_type.as_str());
            aggregate_id.push(commit.aggregate_id.as_str());
            first_sequence.push(first);
            sequence.push(event.sequence);
            event_type.push(event.event_type.as_str());
            event_version.push(event.event_version.as_str());
            payload.push(event.payload.as_str());
            metadata.push(event.metadata.as_str());
        }
    }
    let written: Vec<(String, String, String, i64)> = sqlx::query_as(APPEND)
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(first_sequence)
        .bind(sequence)
        .bind(event_type)
        .bind(event_version)
        .bind(payload)
        .bind(metadata)
        .fetch_all(pool)
        .await?;
    // One statement, one transaction: every row has the same `tx_id`; a commit's place is
    // its last (highest) global position.
    let index: HashMap<(&str, &str), usize> = commits
        .iter()
        .enumerate()
        .map(|(i, commit)| (commit.stream(), i))
        .collect();
    let mut last: Vec<Option<StorePosition>> = vec![None; commits.len()];
    for (aggregate_type, aggregate_id, tx_id, global_position) in written {
        let tx_id = tx_id.parse().map_err(|_| {
            sqlx::Error::Protocol(format!("the append returned an unreadable tx_id {tx_id:?}"))
        })?;
        let position = StorePosition {
            tx_id,
            global_position,
        };
        if let Some(&i) = index.get(&(aggregate_type.as_str(), aggregate_id.as_str())) {
            last[i] = Some(last[i].map_or(position, |p| p.max(position)));
        }
    }
    Ok(last)
}
