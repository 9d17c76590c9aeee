//! Aggregate snapshots: loading a model whose stream is long reads its latest snapshot and
//! only the events after it, so a command's cost does not grow with the history
//! (docs/performance.md, finding 4). cqrs-es 0.5's own snapshot modes are not used (DESIGN
//! §2): the event store stays the only source of truth and a snapshot is a cache the service
//! writes after a commit, every [`EVERY`] events, and may always ignore.

use cqrs_es::persist::EventStoreAggregateContext;
use cqrs_es::persist::{EventUpcaster, PersistenceError};
use cqrs_es::{Aggregate, AggregateError, EventEnvelope};
use domain::{ProcessModel, ProcessModelError};

use crate::store::{EventLog, Snapshot};
use crate::upcast::ModelEventUpcaster;

/// The serialized shape of [`ProcessModel`] in snapshots. Change it whenever that shape
/// changes: snapshots of another schema are ignored (the stream is replayed) and replaced.
pub const SCHEMA: &str = "ProcessModel/1";

/// A snapshot is written when the stream has grown this many events past the last one.
pub const EVERY: usize = 100;

/// A model loaded through its snapshot: the context to decide and commit on, and the
/// snapshot's sequence (0 without one).
pub(crate) struct Loaded {
    pub(crate) context: EventStoreAggregateContext<ProcessModel>,
    pub(crate) snapshot_sequence: usize,
}

impl crate::cache::CachedModel {
    /// The context to decide and commit on, as a load would have given it.
    pub(crate) fn into_loaded(self, stream: &str) -> Loaded {
        Loaded {
            context: EventStoreAggregateContext {
                aggregate_id: stream.to_owned(),
                aggregate: self.model,
                current_sequence: self.sequence,
                current_snapshot: None,
            },
            snapshot_sequence: self.snapshot_sequence,
        }
    }
}

/// `stream`'s state, in one round trip: from its snapshot and the events after it when it
/// has a usable one, else from all its events. A snapshot that no longer decodes is ignored
/// (the stream is read again, whole).
pub(crate) async fn load(
    log: &dyn EventLog,
    stream: &str,
) -> Result<Loaded, AggregateError<ProcessModelError>> {
    let read = |schema: &'static str| async move {
        log.load_stream(ProcessModel::TYPE, stream, schema)
            .await
            .map_err(|e| AggregateError::DatabaseConnectionError(Box::new(e)))
    };
    let (snapshot, mut events) = read(SCHEMA).await?;
    let mut start = (ProcessModel::default(), 0);
    if let Some(snapshot) = snapshot {
        match (
            usize::try_from(snapshot.sequence),
            serde_json::from_value::<ProcessModel>(snapshot.payload),
        ) {
            (Ok(sequence), Ok(aggregate)) => start = (aggregate, sequence),
            _ => {
                tracing::warn!(
                    stream,
                    "ignoring a snapshot that does not decode; replaying the stream"
                );
                // No stored schema is empty: this reads every event.
                events = read("").await?.1;
            }
        }
    }
    let (mut aggregate, snapshot_sequence) = start;
    let mut current_sequence = snapshot_sequence;
    let upcaster = ModelEventUpcaster;
    for event in events {
        let event = if upcaster.can_upcast(&event.event_type, &event.event_version) {
            upcaster.upcast(event)
        } else {
            event
        };
        let envelope: EventEnvelope<ProcessModel> = event
            .try_into()
            .map_err(|e: PersistenceError| AggregateError::from(e))?;
        current_sequence = envelope.sequence;
        aggregate.apply(envelope.payload);
    }
    Ok(Loaded {
        context: EventStoreAggregateContext {
            aggregate_id: stream.to_owned(),
            aggregate,
            current_sequence,
            current_snapshot: None,
        },
        snapshot_sequence,
    })
}

/// Whether a stream now at `sequence`, last snapshotted at `snapshot_sequence`, is due.
pub(crate) fn due(sequence: usize, snapshot_sequence: usize) -> bool {
    sequence >= snapshot_sequence + EVERY
}

/// Stores `model` as the state at `sequence`; whether it was stored. A failure costs only
/// speed: it is logged and the next load replays further.
pub(crate) async fn save(
    log: &dyn EventLog,
    stream: &str,
    sequence: usize,
    model: &ProcessModel,
) -> bool {
    let result = async {
        let snapshot = Snapshot {
            sequence: i64::try_from(sequence).map_err(|e| sqlx::Error::Encode(Box::new(e)))?,
            schema: SCHEMA.to_owned(),
            payload: serde_json::to_value(model).map_err(|e| sqlx::Error::Encode(Box::new(e)))?,
        };
        log.save_snapshot(ProcessModel::TYPE, stream, &snapshot)
            .await
    }
    .await;
    if let Err(error) = &result {
        tracing::warn!(stream, sequence, %error, "could not store a snapshot");
    }
    result.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_due_every_hundred_events() {
        assert!(!due(99, 0));
        assert!(due(100, 0));
        assert!(!due(150, 100));
        assert!(due(201, 100));
    }
}
