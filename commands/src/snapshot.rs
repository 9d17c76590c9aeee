//! Aggregate snapshots: loading a model whose stream is long reads its latest snapshot and
//! only the events after it, so a command's cost does not grow with the history
//! (docs/performance.md, finding 4). cqrs-es 0.5's own snapshot modes are not used (DESIGN
//! §2): the event store stays the only source of truth and a snapshot is a cache the service
//! writes after a commit, every [`EVERY`] events or [`EVERY_BYTES`] of event JSON, and may
//! always ignore.

use cqrs_es::persist::EventStoreAggregateContext;
use cqrs_es::{Aggregate, AggregateError};
use domain::upcast::{needs_upcast, upcast_model_event};
use domain::{ProcessModel, ProcessModelError, ProcessModelEvent};

use crate::store::{EventLog, Snapshot, StreamEvent};

/// The serialized shape of [`ProcessModel`] in snapshots. Change it whenever that shape
/// changes: snapshots of another schema are ignored (the stream is replayed) and replaced.
pub const SCHEMA: &str = "ProcessModel/1";

/// A snapshot is written when the stream has grown this many events past the last one…
pub const EVERY: usize = 100;

/// … or when the events after the last one hold this many bytes of JSON: a model saved
/// over and over with a large editor JSON (every save carries all of it) would otherwise
/// make each load decode up to 99 copies of it. With 16 KB of editor JSON that is a snapshot
/// every 16 saves; a model whose every save is larger is snapshotted on each.
pub const EVERY_BYTES: usize = 256 * 1024;

/// A model loaded through its snapshot: the context to decide and commit on, and the
/// snapshot's sequence (0 without one).
pub(crate) struct Loaded {
    pub(crate) context: EventStoreAggregateContext<ProcessModel>,
    pub(crate) snapshot_sequence: usize,
    /// The JSON bytes of the events after the snapshot (see [`EVERY_BYTES`]).
    pub(crate) bytes_since_snapshot: usize,
}

impl crate::cache::CachedModel {
    /// The context to decide and commit on, as a load would have given it.
    pub(crate) fn into_loaded(self, stream: &str) -> Loaded {
        Loaded {
            context: EventStoreAggregateContext {
                aggregate_id: stream.to_owned(),
                aggregate: self.model,
                current_sequence: self.at.sequence,
                current_snapshot: None,
            },
            snapshot_sequence: self.at.snapshot_sequence,
            bytes_since_snapshot: self.at.bytes_since_snapshot,
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
            serde_json::from_str::<ProcessModel>(&snapshot.payload),
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
    // The stored text's length: what the append wrote, or for events stored before
    // migrations/0012 the text of their `jsonb` (a space after each `:` and `,`, a little
    // more): a threshold, not a sum that must match.
    let bytes_since_snapshot = events.iter().map(|event| event.payload.len()).sum();
    for event in &events {
        let payload =
            decode_event(event).map_err(|e| AggregateError::DeserializationError(Box::new(e)))?;
        current_sequence = usize::try_from(event.sequence)
            .map_err(|e| AggregateError::DeserializationError(Box::new(e)))?;
        aggregate.apply(payload);
    }
    Ok(Loaded {
        context: EventStoreAggregateContext {
            aggregate_id: stream.to_owned(),
            aggregate,
            current_sequence,
            current_snapshot: None,
        },
        snapshot_sequence,
        bytes_since_snapshot,
    })
}

/// A stored event as the domain event, upcast first if it is of an older version (the same
/// upcasters the projections apply on replay).
fn decode_event(event: &StreamEvent) -> Result<ProcessModelEvent, serde_json::Error> {
    if needs_upcast(&event.event_type, &event.event_version) {
        let stored = serde_json::from_str(&event.payload)?;
        serde_json::from_value(upcast_model_event(
            &event.event_type,
            &event.event_version,
            stored,
        ))
    } else {
        serde_json::from_str(&event.payload)
    }
}

/// Whether a stream now at `sequence`, last snapshotted at `snapshot_sequence` with
/// `bytes_since` bytes of event JSON after that, is due.
pub(crate) fn due(sequence: usize, snapshot_sequence: usize, bytes_since: usize) -> bool {
    sequence >= snapshot_sequence + EVERY || bytes_since >= EVERY_BYTES
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
            payload: serde_json::to_string(model).map_err(|e| sqlx::Error::Encode(Box::new(e)))?,
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
    fn a_snapshot_is_due_every_hundred_events_or_every_quarter_mebibyte() {
        assert!(!due(99, 0, 0));
        assert!(due(100, 0, 0));
        assert!(!due(150, 100, 0));
        assert!(due(201, 100, 0));
        assert!(!due(120, 100, EVERY_BYTES - 1));
        assert!(due(120, 100, EVERY_BYTES));
    }
}
