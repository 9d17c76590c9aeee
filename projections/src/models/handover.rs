//! Read-your-writes without a read-back: the live projector hands the `process_models`
//! rows it has just committed to the requests waiting for them, so a command's answer
//! costs no query of the row it caused.
//!
//! A request registers the model it waits for ([`Handover::expect`]) before it waits for
//! the projector's checkpoint. While applying a batch the projector stages a copy of each
//! final row someone waits for (only those: the rest are not copied); once the batch's
//! transaction has committed ([`crate::Projector::committed`]) the staged rows go to their
//! slots. A batch that rolls back never reaches a slot: the next `apply` drops what it
//! staged. So a slot only ever holds a committed row, and when the checkpoint has passed
//! the request's event the slot holds the row as of that batch or a later one, exactly
//! what a read of the table would return then, provided this process applied that batch.
//! If another replica's runner did (a fail-over in between), the slot may hold an older
//! row or none: the request compares the row's revision with its own and reads otherwise.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use uuid::Uuid;

use super::store::ModelRow;

/// Committed rows on their way to waiting requests; cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Handover {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// One slot per model someone waits for.
    slots: HashMap<Uuid, Slot>,
    /// Rows of the batch being applied, for the slots once it commits.
    staged: Vec<ModelRow>,
}

#[derive(Debug, Default)]
struct Slot {
    waiters: usize,
    row: Option<ModelRow>,
}

impl Handover {
    /// Registers a wait for model `id`'s row; the registration ends when the returned
    /// [`Expected`] is dropped.
    pub fn expect(&self, id: Uuid) -> Expected {
        self.lock().slots.entry(id).or_default().waiters += 1;
        Expected {
            handover: self.clone(),
            id,
        }
    }

    /// Starts a batch: forgets rows staged by a batch that did not commit.
    pub(crate) fn begin(&self) {
        self.lock().staged.clear();
    }

    /// Stages a copy of each row that a request waits for.
    pub(crate) fn stage(&self, rows: &[ModelRow]) {
        let mut inner = self.lock();
        if inner.slots.is_empty() {
            return;
        }
        let wanted: Vec<ModelRow> = rows
            .iter()
            .filter(|row| inner.slots.contains_key(&row.id))
            .cloned()
            .collect();
        inner.staged.extend(wanted);
    }

    /// The staged batch committed: its rows go to the slots still waiting for them.
    pub(crate) fn committed(&self) {
        let mut inner = self.lock();
        let staged = std::mem::take(&mut inner.staged);
        for row in staged {
            if let Some(slot) = inner.slots.get_mut(&row.id) {
                slot.row = Some(row);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The sections below never panic half-way; a poisoned lock still holds valid data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A registered wait for one model's row.
#[derive(Debug)]
pub struct Expected {
    handover: Handover,
    id: Uuid,
}

impl Expected {
    /// The row the projector last committed for the model since the registration, if any.
    pub fn row(&self) -> Option<ModelRow> {
        let inner = self.handover.lock();
        inner.slots.get(&self.id).and_then(|slot| slot.row.clone())
    }
}

impl Drop for Expected {
    fn drop(&mut self) {
        let mut inner = self.handover.lock();
        if let Some(slot) = inner.slots.get_mut(&self.id) {
            slot.waiters -= 1;
            if slot.waiters == 0 {
                inner.slots.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn row(id: Uuid, revision: i64) -> ModelRow {
        ModelRow {
            id,
            tenant_id: "t".into(),
            process_key: "k".into(),
            name: "n".into(),
            category: None,
            description: None,
            version: 1,
            status: "DRAFT".into(),
            model_json: Some(sqlx::types::Json(
                serde_json::value::RawValue::from_string("{}".into()).expect("JSON"),
            )),
            created_by: None,
            created_time: Utc::now(),
            updated_by: None,
            updated_time: Utc::now(),
            revision,
        }
    }

    #[test]
    fn a_waiting_request_gets_the_row_once_its_batch_commits() {
        let handover = Handover::default();
        let id = Uuid::new_v4();
        let expected = handover.expect(id);
        handover.begin();
        handover.stage(&[row(id, 3), row(Uuid::new_v4(), 1)]);
        assert!(expected.row().is_none(), "staged is not committed");
        handover.committed();
        assert_eq!(expected.row().map(|r| r.revision), Some(3));
        // Only the wanted row was copied.
        assert!(handover.lock().staged.is_empty());
    }

    #[test]
    fn rows_of_a_batch_that_did_not_commit_never_reach_a_slot() {
        let handover = Handover::default();
        let id = Uuid::new_v4();
        let expected = handover.expect(id);
        handover.begin();
        handover.stage(&[row(id, 3)]);
        // The transaction rolled back; the retry stages again and commits.
        handover.begin();
        handover.committed();
        assert!(expected.row().is_none());
        handover.begin();
        handover.stage(&[row(id, 4)]);
        handover.committed();
        assert_eq!(expected.row().map(|r| r.revision), Some(4));
    }

    #[test]
    fn nothing_is_kept_for_models_nobody_waits_for() {
        let handover = Handover::default();
        let id = Uuid::new_v4();
        let first = handover.expect(id);
        let second = handover.expect(id);
        drop(first);
        handover.begin();
        handover.stage(&[row(id, 2)]);
        handover.committed();
        assert_eq!(second.row().map(|r| r.revision), Some(2));
        drop(second);
        assert!(handover.lock().slots.is_empty());
        handover.begin();
        handover.stage(&[row(id, 3)]);
        assert!(handover.lock().staged.is_empty());
        handover.committed();
        assert!(handover.lock().slots.is_empty());
    }
}
