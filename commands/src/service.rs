//! Executing commands: load the stream, decide, append with metadata; retry on conflicts.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use cqrs_es::{Aggregate, AggregateError, DomainEvent, EventEnvelope};
use domain::{
    CommandRejected, CommandRejection, ModelAction, ModelId, ProcessModel, ProcessModelCommand,
    ProcessModelError, RecordRejection,
};
use rand::Rng;
use sqlx::{PgPool, SqlitePool};

use crate::cache::{CachedModel, StateCache, StateCacheCounts, StreamAt};
use crate::error::CommandError;
use crate::history::{HistoryEvent, StorePosition};
use crate::metadata::CommandMetadata;
use crate::postgres::PgEventLog;
use crate::snapshot;
use crate::sqlite::SqliteEventLog;
use crate::store::{AppendError, EventLog, NewEvent};

/// How many times a command is tried when other writers keep winning the race.
const DEFAULT_MAX_ATTEMPTS: u32 = 10;

/// The default memory budget of the state cache (kept serialized): about 14 000 models of
/// an empty canvas, 500 with 16 KB of editor JSON.
pub const DEFAULT_STATE_CACHE_BYTES: usize = 8 * 1024 * 1024;

/// The result of an accepted command.
#[derive(Debug)]
pub struct Committed {
    /// The model after the command.
    pub model: ProcessModel,
    /// The events written; empty when the command changed nothing.
    pub events: Vec<EventEnvelope<ProcessModel>>,
    /// Where the last written event sits in the store (for read-your-writes); `None` when
    /// nothing was written.
    pub position: Option<StorePosition>,
}

/// A refused command, as recorded for the audit log.
pub type Rejection = CommandRejected;

/// What the API needs of the write side, whichever store is behind it.
#[async_trait]
pub trait Commands: Send + Sync + 'static {
    /// Runs a command on one model; see [`CommandService::execute`].
    async fn execute(
        &self,
        id: ModelId,
        command: ProcessModelCommand,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError>;

    /// The model as the event store has it (`Default` when it does not exist).
    async fn load(&self, id: ModelId) -> Result<ProcessModel, CommandError>;

    /// A model's events with their store positions and times.
    async fn history(&self, id: ModelId) -> Result<Vec<HistoryEvent>, CommandError>;

    /// Appends a `CommandRejected` record (its own stream) for the audit log.
    async fn record_rejection(
        &self,
        rejection: Rejection,
        metadata: &CommandMetadata,
    ) -> Result<(), CommandError>;
}

/// The write side's entry point over one event store. cqrs-es supplies the aggregate model
/// (decide with `handle`, evolve with `apply`) and the serialized event shape; loading and
/// appending are the [`EventLog`]'s (one round trip each).
pub struct CommandService {
    log: Box<dyn EventLog>,
    max_attempts: u32,
    cache: StateCache,
    cache_counts: StateCacheCounts,
}

impl CommandService {
    /// The write side on PostgreSQL.
    pub fn postgres(pool: PgPool) -> Self {
        Self::new(PgEventLog::new(pool))
    }

    /// The write side on the embedded SQLite store.
    pub fn sqlite(pool: SqlitePool) -> Self {
        Self::new(SqliteEventLog::new(pool))
    }

    fn new(log: impl EventLog) -> Self {
        Self {
            log: Box::new(log),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            cache: StateCache::new(DEFAULT_STATE_CACHE_BYTES),
            cache_counts: StateCacheCounts::default(),
        }
    }

    /// How this service's commands used the state cache so far.
    pub fn state_cache_counts(&self) -> StateCacheCounts {
        self.cache_counts.clone()
    }

    /// Keeps the state of recently written models up to `bytes` (serialized), so a
    /// command on one of them skips the load, and decides creates on a stream assumed new;
    /// 0 turns both off (every command loads). See [`crate::cache`].
    pub fn with_state_cache(mut self, bytes: usize) -> Self {
        self.cache = StateCache::new(bytes);
        self
    }

    /// Runs a command on one model. An optimistic-lock conflict (another writer appended
    /// first) re-runs the command on the new state: with an expected revision that yields
    /// `StaleRevision`, for a create `KeyTaken`, otherwise the command applies on top.
    ///
    /// The first try starts from the model's cached state when there is one (see
    /// [`crate::cache`]), and a create from an empty stream; only its successful append
    /// stands, anything else it leads to is decided again on a fresh load, without counting
    /// as an attempt.
    #[tracing::instrument(skip(self, command, metadata), fields(model_id = %id, command = command.action.name()))]
    pub async fn execute(
        &self,
        id: ModelId,
        command: ProcessModelCommand,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        let stream = id.to_string();
        let metadata = metadata.to_map(command.action.name());
        let mut cached = self.cache.get(&stream).or_else(|| {
            // A create succeeds only on an empty stream: assume this one is, and let the
            // append at sequence 1 check it (taken, it conflicts and the create is decided
            // on a load, as `KeyTaken`).
            (self.cache.enabled() && matches!(command.action, ModelAction::Create(_)))
                .then(CachedModel::new_stream)
        });
        if cached.is_none() {
            self.cache_counts.miss();
        }
        let mut attempt = 1;
        while attempt <= self.max_attempts {
            let from_cache = cached.is_some();
            let snapshot::Loaded {
                mut context,
                snapshot_sequence,
                bytes_since_snapshot,
            } = match cached.take() {
                Some(cached) => cached.into_loaded(&stream),
                None => self.load_context(&stream).await.map_err(|e| {
                    CommandError::from_aggregate(e)
                        .unwrap_or(CommandError::Contention { attempts: attempt })
                })?,
            };
            let sink = cqrs_es::event_sink::EventSink::default();
            let handled = context.aggregate.handle(command.clone(), &(), &sink).await;
            let events = match handled {
                Ok(()) => wrap::<ProcessModel>(
                    &stream,
                    context.current_sequence,
                    sink.collect().await,
                    &metadata,
                ),
                Err(_) if from_cache => {
                    // A refusal on a state that may be stale: decide it on the store's.
                    self.cache.forget(&stream);
                    self.cache_counts.stale_state();
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            if from_cache && events.is_empty() {
                // "Nothing to change" on a possibly stale state is not an answer either.
                self.cache.forget(&stream);
                self.cache_counts.stale_state();
                continue;
            }
            // `model` is the state after the events: the sink applied them.
            let model = context.aggregate;
            if events.is_empty() {
                return Ok(Committed {
                    model,
                    events,
                    position: None,
                });
            }
            let serialized = serialize(&events)?;
            match self.log.append(&serialized).await {
                Ok(position) => {
                    if from_cache {
                        self.cache_counts.hit();
                    }
                    let sequence = events.last().map_or(0, |e| e.sequence);
                    let bytes_since_snapshot = bytes_since_snapshot
                        + serialized
                            .iter()
                            .map(|event| event.payload.len())
                            .sum::<usize>();
                    let at = if snapshot::due(sequence, snapshot_sequence, bytes_since_snapshot)
                        && snapshot::save(self.log.as_ref(), &stream, sequence, &model).await
                    {
                        StreamAt {
                            sequence,
                            snapshot_sequence: sequence,
                            bytes_since_snapshot: 0,
                        }
                    } else {
                        StreamAt {
                            sequence,
                            snapshot_sequence,
                            bytes_since_snapshot,
                        }
                    };
                    self.cache.put(&stream, &model, at);
                    return Ok(Committed {
                        model,
                        events,
                        position: Some(position),
                    });
                }
                Err(AppendError::Conflict) => {
                    self.cache.forget(&stream);
                    if from_cache {
                        self.cache_counts.stale_state();
                    } else {
                        tracing::debug!(attempt, "conflict on append; retrying");
                        tokio::time::sleep(backoff(attempt)).await;
                        attempt += 1;
                    }
                }
                Err(AppendError::Store(error)) => {
                    // Whether it was written is unknown: the next command loads.
                    self.cache.forget(&stream);
                    return Err(error.into());
                }
            }
        }
        Err(CommandError::Contention {
            attempts: self.max_attempts,
        })
    }

    /// The model as the event store has it (`Default` when it does not exist).
    #[tracing::instrument(skip(self), fields(model_id = %id))]
    pub async fn load(&self, id: ModelId) -> Result<ProcessModel, CommandError> {
        self.load_context(&id.to_string())
            .await
            .map(|loaded| loaded.context.aggregate)
            .map_err(|e| {
                CommandError::from_aggregate(e).unwrap_or(CommandError::Contention { attempts: 1 })
            })
    }

    /// The stream's state: from its snapshot and the events after it when it has one, else
    /// from all its events (one round trip either way).
    async fn load_context(
        &self,
        stream: &str,
    ) -> Result<snapshot::Loaded, AggregateError<ProcessModelError>> {
        snapshot::load(self.log.as_ref(), stream).await
    }

    /// A model's events with their store positions and times.
    pub async fn history(&self, id: ModelId) -> Result<Vec<HistoryEvent>, CommandError> {
        Ok(self
            .log
            .history(ProcessModel::TYPE, &id.to_string())
            .await?)
    }

    /// Appends a `CommandRejected` record (its own stream) for the audit log.
    #[tracing::instrument(skip_all, fields(command = %rejection.command, reason = %rejection.reason_code))]
    pub async fn record_rejection(
        &self,
        rejection: Rejection,
        metadata: &CommandMetadata,
    ) -> Result<(), CommandError> {
        let stream = uuid::Uuid::new_v4().to_string();
        let metadata = metadata.to_map(&rejection.command);
        let sink = cqrs_es::event_sink::EventSink::default();
        CommandRejection::default()
            .handle(RecordRejection(rejection), &(), &sink)
            .await?;
        let events = wrap::<CommandRejection>(&stream, 0, sink.collect().await, &metadata);
        match self.log.append(&serialize(&events)?).await {
            Ok(_) => Ok(()),
            // A fresh stream: only a second writer of the same new id could conflict.
            Err(AppendError::Conflict) => Err(CommandError::Contention { attempts: 1 }),
            Err(AppendError::Store(error)) => Err(error.into()),
        }
    }
}

#[async_trait]
impl Commands for CommandService {
    async fn execute(
        &self,
        id: ModelId,
        command: ProcessModelCommand,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        CommandService::execute(self, id, command, metadata).await
    }

    async fn load(&self, id: ModelId) -> Result<ProcessModel, CommandError> {
        CommandService::load(self, id).await
    }

    async fn history(&self, id: ModelId) -> Result<Vec<HistoryEvent>, CommandError> {
        CommandService::history(self, id).await
    }

    async fn record_rejection(
        &self,
        rejection: Rejection,
        metadata: &CommandMetadata,
    ) -> Result<(), CommandError> {
        CommandService::record_rejection(self, rejection, metadata).await
    }
}

/// Jittered exponential backoff: spreads retrying writers apart.
fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = 2u64 << attempt.min(6);
    Duration::from_millis(rand::rng().random_range(1..=ceiling_ms))
}

/// The envelopes of one commit: consecutive sequences after `last_sequence`, each with the
/// command's metadata.
fn wrap<A: Aggregate>(
    stream: &str,
    last_sequence: usize,
    events: Vec<A::Event>,
    metadata: &HashMap<String, String>,
) -> Vec<EventEnvelope<A>> {
    events
        .into_iter()
        .zip(last_sequence + 1..)
        .map(|(payload, sequence)| EventEnvelope {
            aggregate_id: stream.to_owned(),
            sequence,
            payload,
            metadata: metadata.clone(),
        })
        .collect()
}

/// The events as the log appends them: payload and metadata written as JSON text once,
/// straight from the domain event.
fn serialize<A: Aggregate>(events: &[EventEnvelope<A>]) -> Result<Vec<NewEvent>, CommandError> {
    events
        .iter()
        .map(|event| {
            Ok(NewEvent {
                aggregate_type: A::TYPE.to_owned(),
                aggregate_id: event.aggregate_id.clone(),
                sequence: event.sequence,
                event_type: event.payload.event_type(),
                event_version: event.payload.event_version(),
                payload: serde_json::to_string(&event.payload)
                    .map_err(|e| CommandError::Store(Box::new(e)))?,
                metadata: serde_json::to_string(&event.metadata)
                    .map_err(|e| CommandError::Store(Box::new(e)))?,
            })
        })
        .collect()
}
