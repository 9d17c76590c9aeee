//! Rebuilding a read-model family on SQLite: one write transaction clears its tables and
//! replays every event from position 0 through the same fold or chain code as the live
//! loop, then sets its checkpoint to the last event. In WAL mode readers keep reading the
//! old content until that transaction commits, so there is no downtime for queries.
//!
//! SQLite has one writer: while a rebuild runs, the loop and the write side's appends wait
//! for it (the write side up to its busy timeout).

use std::time::Instant;

use super::projector::{SqliteProjections, AUDIT, MODELS};
use super::{audit_store, checkpoint, events, model_store};
use crate::event::StoredEvent;
use crate::position::Position;
use crate::rebuild::{Progress, RebuildError, RebuildReport};

/// A family of read tables that can be rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `process_models` and `model_versions`.
    Models,
    /// `audit_logs`.
    Audit,
}

impl Family {
    /// Its name (and its consumer's checkpoint name): `process_models` or `audit_logs`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Models => MODELS,
            Self::Audit => AUDIT,
        }
    }

    /// The family with this name, as the admin endpoint takes it.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Models, Self::Audit]
            .into_iter()
            .find(|family| family.name() == name)
    }
}

impl SqliteProjections {
    /// Rebuilds `family` from position 0, reporting progress before the first batch and
    /// after each one. [`RebuildReport::generation`] is always 1: SQLite keeps one
    /// generation. A second rebuild while one runs fails with
    /// [`RebuildError::AlreadyRunning`].
    pub async fn rebuild(
        &self,
        family: Family,
        mut progress: impl FnMut(Progress) + Send,
    ) -> Result<RebuildReport, RebuildError> {
        let _only = self
            .inner
            .rebuilding
            .try_lock()
            .map_err(|_| RebuildError::AlreadyRunning(family.name()))?;
        // Pauses the live loop between batches; it resumes from the new checkpoint.
        let _writer = self.inner.writer.lock().await;
        let started = Instant::now();
        let batch_size = self.inner.config.batch_size;
        let mut tx = self.inner.pool.begin_with("BEGIN IMMEDIATE").await?;
        let total = u64::try_from(events::count_after(&mut tx, 0).await?).unwrap_or(0);
        let mut done = 0u64;
        progress(Progress { done, total });
        match family {
            Family::Models => model_store::clear(&mut tx).await?,
            Family::Audit => audit_store::clear(&mut tx).await?,
        }
        let mut last = Position::START;
        loop {
            let batch = events::read_after(&mut tx, last.global_position, batch_size).await?;
            let Some(end) = batch.last().map(StoredEvent::position) else {
                break;
            };
            let batch: Vec<&StoredEvent> = batch.iter().collect();
            match family {
                Family::Models => model_store::apply(&mut tx, &batch).await?,
                Family::Audit => audit_store::apply(&mut tx, &batch).await?,
            }
            last = end;
            done += batch.len() as u64;
            progress(Progress {
                done,
                total: total.max(done),
            });
        }
        checkpoint::save(&mut tx, family.name(), last).await?;
        tx.commit().await?;
        if family == Family::Models {
            self.inner.advance_models(last.global_position);
        }
        let report = RebuildReport {
            family: family.name(),
            generation: super::audit::GENERATION,
            events: done,
            seconds: started.elapsed().as_secs_f64(),
        };
        tracing::info!(
            family = family.name(),
            events = done,
            seconds = report.seconds,
            "sqlite rebuild finished"
        );
        Ok(report)
    }
}
