//! `audit verify`: walks a generation's hash chain in seq order and reports the first row
//! that was edited, deleted, inserted or moved.
//!
//! The checks are backend-independent: each backend supplies its reads as a
//! [`ChainLookup`] (PostgreSQL: `verify_pg`, SQLite: `crate::sqlite::audit`). The walk
//! reads pages of rows in one read snapshot (a read-only `REPEATABLE READ` transaction on
//! PostgreSQL, a WAL read transaction on SQLite), so a
//! projector appending meanwhile cannot make an intact chain look broken, and memory stays
//! flat however long the chain is. For the active generation it also compares the chain's
//! end with the live projector's checkpoint (the last event of the last row, always), which
//! catches rows deleted from, or appended to, the end of the chain. What the chain cannot catch: someone who recomputes every hash from the forged
//! row onwards (the hash is not keyed); compare `last_hash` with a copy kept elsewhere for
//! that.

use async_trait::async_trait;
use serde::Serialize;

use super::hash::{self, GENESIS};
use super::row::AuditRow;

/// Rows per page of the walk.
const PAGE: i64 = 5_000;
/// How far a renumbered row is searched for its original seq.
const MAX_SHIFT: i64 = 1_000;

/// What the walk found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// The generation walked.
    pub generation: i64,
    /// Rows that passed every check, i.e. the intact prefix of the chain.
    pub rows_checked: u64,
    /// The seq and hash of the last intact row: keep the hash elsewhere to detect a chain
    /// rewritten from that point on.
    pub last_seq: Option<i64>,
    pub last_hash: Option<String>,
    /// The first problem in seq order; `None` when the chain is intact.
    pub first_problem: Option<ChainProblem>,
}

impl VerifyReport {
    /// Whether the chain is intact.
    pub fn is_intact(&self) -> bool {
        self.first_problem.is_none()
    }
}

/// The first place where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainProblem {
    /// The first bad seq (for a missing row, the seq it had).
    pub seq: i64,
    /// The id of the row now stored at `seq`, if there is one.
    pub id: Option<i64>,
    pub kind: ProblemKind,
    /// What exactly does not fit, for people.
    pub detail: String,
}

/// How the chain is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProblemKind {
    /// The row's content no longer matches its hash (it was changed in place).
    Edited,
    /// Rows were deleted: a seq gap, a row renumbered to close one, or a chain that ends
    /// before the projector's checkpoint.
    Missing,
    /// The row is not where the chain puts it: inserted, forged, or re-ordered.
    OutOfChain,
}

/// The reads the walk needs, inside one snapshot of one generation: each backend supplies
/// them, the checks themselves are shared.
#[async_trait]
pub(crate) trait ChainLookup: Send {
    /// Up to `limit` rows with seq above `after`, in seq order.
    async fn page(&mut self, after: i64, limit: i64) -> Result<Vec<AuditRow>, sqlx::Error>;
    /// The `prev_hash` of the first row after `seq`.
    async fn prev_hash_after(&mut self, seq: i64) -> Result<Option<String>, sqlx::Error>;
    /// The lowest seq of a row whose `hash` is `hash`.
    async fn seq_of_hash(&mut self, hash: &str) -> Result<Option<i64>, sqlx::Error>;
    /// The id of the row at `seq`.
    async fn id_at(&mut self, seq: i64) -> Result<Option<i64>, sqlx::Error>;
    /// The live projector's checkpoint as `(tx_id, global_position)`, if it has one.
    async fn checkpoint(&mut self) -> Result<Option<(i64, i64)>, sqlx::Error>;
    /// `(seq, id)` of the first row recording events after `(tx_id, global_position)`.
    async fn first_beyond(
        &mut self,
        tx_id: i64,
        global_position: i64,
    ) -> Result<Option<(i64, i64)>, sqlx::Error>;
}

/// Walks the chain `lookup` reads, a page at a time; with `check_end`, also compares its end
/// with the live projector's checkpoint (only meaningful for the generation it writes).
pub(crate) async fn walk(
    lookup: &mut (impl ChainLookup + ?Sized),
    generation: i64,
    check_end: bool,
) -> Result<VerifyReport, sqlx::Error> {
    let mut report = VerifyReport {
        generation,
        rows_checked: 0,
        last_seq: None,
        last_hash: None,
        first_problem: None,
    };
    let mut last: Option<AuditRow> = None;
    let mut after = i64::MIN;
    'walk: loop {
        let rows = lookup.page(after, PAGE).await?;
        let Some(end) = rows.last() else { break };
        after = end.seq;
        for row in rows {
            if let Some(problem) = check(lookup, last.as_ref(), &row).await? {
                report.first_problem = Some(problem);
                break 'walk;
            }
            report.rows_checked += 1;
            last = Some(row);
        }
    }
    if report.first_problem.is_none() && check_end {
        report.first_problem = end_problem(lookup, last.as_ref()).await?;
    }
    report.last_seq = last.as_ref().map(|row| row.seq);
    report.last_hash = last.map(|row| row.hash);
    Ok(report)
}

/// Checks `row` against the row before it (`None`: it should be the first).
async fn check(
    lookup: &mut (impl ChainLookup + ?Sized),
    before: Option<&AuditRow>,
    row: &AuditRow,
) -> Result<Option<ChainProblem>, sqlx::Error> {
    let expected = before.map_or(1, |before| before.seq + 1);
    if row.seq > expected {
        let detail = if row.seq == expected + 1 {
            format!("row seq {expected} is missing (deleted)")
        } else {
            format!(
                "rows seq {expected}..={} are missing (deleted)",
                row.seq - 1
            )
        };
        return Ok(Some(problem(expected, None, ProblemKind::Missing, detail)));
    }
    if row.seq < expected {
        let detail = format!("seq {} is before the chain's first row, seq 1", row.seq);
        return Ok(Some(problem(
            row.seq,
            Some(row.id),
            ProblemKind::OutOfChain,
            detail,
        )));
    }
    let intact = hash::compute(row) == row.hash;
    let previous_hash = before.map_or(GENESIS, |before| before.hash.as_str());
    if row.prev_hash == previous_hash {
        if intact {
            return Ok(None);
        }
        // Changed in place, or slipped in before a row that still follows the previous one?
        let next_follows = lookup.prev_hash_after(row.seq).await?;
        if next_follows.as_deref() == Some(previous_hash) {
            let detail = format!(
                "row seq {} (id {}) was inserted: it does not match its hash and the row \
                 after it follows seq {}",
                row.seq,
                row.id,
                row.seq - 1
            );
            return Ok(Some(problem(
                row.seq,
                Some(row.id),
                ProblemKind::OutOfChain,
                detail,
            )));
        }
        let detail = format!(
            "row seq {} (id {}) does not match its hash: its content was changed",
            row.seq, row.id
        );
        return Ok(Some(problem(
            row.seq,
            Some(row.id),
            ProblemKind::Edited,
            detail,
        )));
    }
    unlinked(lookup, row, intact).await.map(Some)
}

/// Explains a row whose `prev_hash` is not the previous row's hash.
async fn unlinked(
    lookup: &mut (impl ChainLookup + ?Sized),
    row: &AuditRow,
    intact: bool,
) -> Result<ChainProblem, sqlx::Error> {
    let seq = row.seq;
    let predecessor = if row.prev_hash == GENESIS {
        Some(0)
    } else {
        lookup.seq_of_hash(&row.prev_hash).await?
    };
    let out_of_chain =
        |at: i64, id: Option<i64>, detail: String| problem(at, id, ProblemKind::OutOfChain, detail);
    if intact {
        // The row itself is unchanged, so its seq is the original one.
        return Ok(match predecessor {
            Some(before) if before < seq - 1 => {
                let first = before + 1;
                let id = lookup.id_at(first).await?;
                out_of_chain(
                    first,
                    id,
                    format!(
                        "rows seq {first}..={} are not part of the chain: row seq {seq} follows \
                         seq {before}",
                        seq - 1
                    ),
                )
            }
            Some(before) => out_of_chain(
                seq,
                Some(row.id),
                format!("row seq {seq} (id {}) follows seq {before}, which comes after it: rows were re-ordered", row.id),
            ),
            None => out_of_chain(
                seq,
                Some(row.id),
                format!(
                    "row seq {seq} (id {}) does not follow row seq {}: one of the two was \
                     replaced or forged",
                    row.id,
                    seq - 1
                ),
            ),
        });
    }
    if let Some(before) = predecessor {
        let moved = before + 1 != seq && rehash_at(row, before + 1) == row.hash;
        let detail = if moved {
            format!(
                "row id {} belongs at seq {} (after seq {before}) but sits at seq {seq}: rows \
                 were re-ordered",
                row.id,
                before + 1
            )
        } else {
            format!(
                "row seq {seq} (id {}) neither matches its hash nor follows the row before it",
                row.id
            )
        };
        return Ok(out_of_chain(seq, Some(row.id), detail));
    }
    if let Some(original) = (seq + 1..=seq + MAX_SHIFT).find(|&at| rehash_at(row, at) == row.hash) {
        let gone = original - seq;
        let detail = format!(
            "{gone} row(s) before row id {} were deleted and the rest renumbered (it was seq \
             {original}, now seq {seq})",
            row.id
        );
        return Ok(problem(seq, Some(row.id), ProblemKind::Missing, detail));
    }
    Ok(out_of_chain(
        seq,
        Some(row.id),
        format!(
            "row seq {seq} (id {}) neither matches its hash nor links to any row: inserted or \
             forged",
            row.id
        ),
    ))
}

/// The hash `row` would have at `seq`.
fn rehash_at(row: &AuditRow, seq: i64) -> String {
    let mut moved = row.clone();
    moved.seq = seq;
    hash::compute(&moved)
}

/// The live projector's checkpoint is the last event of the chain's last row: rows at the
/// end were deleted if it is further on, forged if it is not as far.
async fn end_problem(
    lookup: &mut (impl ChainLookup + ?Sized),
    last: Option<&AuditRow>,
) -> Result<Option<ChainProblem>, sqlx::Error> {
    let Some(processed) = lookup.checkpoint().await? else {
        return Ok(None);
    };
    let end = last.map_or((0, 0), |row| (row.tx_id, row.global_position));
    let (tx_id, position) = processed;
    if processed > end {
        let next = last.map_or(1, |row| row.seq + 1);
        let detail = format!(
            "the chain ends at seq {} but the projector has processed events up to \
             {tx_id}/{position}: rows from seq {next} on were deleted",
            next - 1
        );
        return Ok(Some(problem(next, None, ProblemKind::Missing, detail)));
    }
    if processed < end {
        let (seq, id) = match lookup.first_beyond(tx_id, position).await? {
            Some((seq, id)) => (seq, Some(id)),
            None => (last.map_or(1, |row| row.seq), last.map(|row| row.id)),
        };
        let detail = format!(
            "row seq {seq} records events after {tx_id}/{position}, the last one the projector \
             has processed: it was not written by the projector"
        );
        return Ok(Some(problem(seq, id, ProblemKind::OutOfChain, detail)));
    }
    Ok(None)
}

fn problem(seq: i64, id: Option<i64>, kind: ProblemKind, detail: String) -> ChainProblem {
    ChainProblem {
        seq,
        id,
        kind,
        detail,
    }
}
