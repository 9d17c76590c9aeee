//! `process_model_counts` (migration 0010), the per-(tenant, category, status) model counts
//! a list's total reads, kept by the projector that writes the rows (migration 0011).
//!
//! A batch moves each touched row's count from its key before the batch to its key after
//! it, netted per key and written in the batch's one statement. Row triggers did this
//! before: two statements per publish (a status change) and one per create, each updating
//! one of a few hot rows, ≈ 76 µs of PostgreSQL time per publish (docs/performance.md,
//! "Counts by the projector"). The triggers remain for other writers and skip a transaction
//! that has [`TAKE_OVER`]. A rebuild's fill writes its table unattached and the attach
//! counts it (`generation_table_attach`); the swap's catch-up, after the attach, counts here.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use super::store::{BatchWrite, ModelRow};

/// What a row is counted under.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct CountKey {
    tenant_id: String,
    category: Option<String>,
    status: String,
}

impl CountKey {
    pub(super) fn of(row: &ModelRow) -> Self {
        Self {
            tenant_id: row.tenant_id.clone(),
            category: row.category.clone(),
            status: row.status.clone(),
        }
    }
}

/// The net change of each key's count when the rows `before` (the stored rows a batch
/// loaded, by id) are replaced by `after` (the batch's final images; a row not in `before`
/// is new). Keys whose changes cancel out are left out.
pub(super) fn changes(
    before: &HashMap<Uuid, CountKey>,
    after: &[ModelRow],
) -> Vec<(CountKey, i64)> {
    let mut net: BTreeMap<CountKey, i64> = BTreeMap::new();
    for row in after {
        let key = CountKey::of(row);
        match before.get(&row.id) {
            Some(old) if *old == key => continue,
            Some(old) => *net.entry(old.clone()).or_default() -= 1,
            None => {}
        }
        *net.entry(key).or_default() += 1;
    }
    net.into_iter().filter(|(_, delta)| *delta != 0).collect()
}

/// The call that tells the row triggers (migration 0011) that this transaction counts its
/// rows itself. Made before any row is written, in a statement the batch runs anyway, so
/// it costs no round trip of its own: the rows' load of a batch in a transaction
/// (`super::store::load_models`), or the checkpoint's move of a live step
/// (`super::store::BatchWrite::moving_checkpoint`).
pub(super) const TAKE_OVER: &str = "set_config('flowable.models_counted', 'on', true)";

/// Adds `changes` to `generation`'s counts, as items of the batch's statement. A key seen
/// for the first time gets a row; a count would only go below zero if the counts were
/// already wrong, and the table's check then fails the batch rather than hide it. Only the
/// projector holding the family's checkpoint row writes a generation's rows in use; should
/// another writer's trigger add the same new key at the same moment, this insert's unique
/// violation fails the batch and the runner applies it again.
pub(super) fn apply(write: &mut BatchWrite<'_>, generation: i64, changes: Vec<(CountKey, i64)>) {
    if changes.is_empty() {
        return;
    }
    let n = changes.len();
    let (mut tenant_id, mut category, mut status, mut delta) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (key, change) in changes {
        tenant_id.push(key.tenant_id);
        category.push(key.category);
        status.push(key.status);
        delta.push(change);
    }
    write.item("count_changes").push("SELECT * FROM UNNEST(");
    write.bind(tenant_id, "text[]").push(", ");
    write.bind(category, "text[]").push(", ");
    write.bind(status, "text[]").push(", ");
    let guard = write.guard();
    write
        .bind(delta, "int8[]")
        .push(") AS d(tenant_id, category, status, delta) WHERE ")
        .push(guard)
        .push(")");
    write.item("counts_moved").push(
        "UPDATE process_model_counts c SET models = c.models + d.delta
           FROM count_changes d
          WHERE c.generation = ",
    );
    write.bind(generation, "int8").push(
        " AND c.tenant_id = d.tenant_id
            AND c.category IS NOT DISTINCT FROM d.category AND c.status = d.status
         RETURNING c.tenant_id, c.category, c.status)",
    );
    write
        .item("counts_added")
        .push("INSERT INTO process_model_counts (generation, tenant_id, category, status, models) SELECT ");
    write.bind(generation, "int8").push(
        ", d.tenant_id, d.category, d.status, d.delta
           FROM count_changes d
          WHERE NOT EXISTS (SELECT 1 FROM counts_moved m
                             WHERE m.tenant_id = d.tenant_id
                               AND m.category IS NOT DISTINCT FROM d.category
                               AND m.status = d.status))",
    );
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn row(id: u128, category: Option<&str>, status: &str) -> ModelRow {
        ModelRow {
            id: Uuid::from_u128(id),
            tenant_id: "t".to_owned(),
            process_key: format!("k{id}"),
            name: "n".to_owned(),
            category: category.map(str::to_owned),
            description: None,
            version: 0,
            status: status.to_owned(),
            model_json: None,
            created_by: None,
            created_time: Utc::now(),
            updated_by: None,
            updated_time: Utc::now(),
            revision: 1,
        }
    }

    fn key(category: Option<&str>, status: &str) -> CountKey {
        CountKey::of(&row(0, category, status))
    }

    fn before(rows: &[ModelRow]) -> HashMap<Uuid, CountKey> {
        rows.iter().map(|r| (r.id, CountKey::of(r))).collect()
    }

    #[test]
    fn new_rows_count_up_and_moved_rows_move_their_count() {
        let stored = [row(1, None, "DRAFT"), row(2, Some("sales"), "DRAFT")];
        let after = [
            row(1, None, "PUBLISHED"),
            row(2, None, "DRAFT"),
            row(3, None, "DRAFT"),
            row(4, None, "DRAFT"),
        ];
        assert_eq!(
            changes(&before(&stored), &after),
            vec![
                (key(None, "DRAFT"), 2),
                (key(None, "PUBLISHED"), 1),
                (key(Some("sales"), "DRAFT"), -1),
            ]
        );
    }

    #[test]
    fn rows_that_keep_their_key_and_moves_that_cancel_out_change_nothing() {
        let stored = [row(1, None, "DRAFT"), row(2, None, "PUBLISHED")];
        let after = [row(1, None, "PUBLISHED"), row(2, None, "DRAFT")];
        assert!(changes(&before(&stored), &after).is_empty());
        assert!(changes(&before(&stored), &stored).is_empty());
    }
}
