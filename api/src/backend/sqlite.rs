//! The embedded backend: one SQLite file (WAL mode, held by this process alone), its read
//! tables kept by one in-process projector loop, and an in-process event bus for the live
//! stream instead of NATS (DESIGN §7).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use commands::db::SchemaStatus;
use commands::sqlite::EmbeddedStore;
use commands::{
    CommandError, CommandMetadata, CommandService, Commands, Committed, HistoryEvent, Rejection,
    StorePosition,
};
use domain::{ModelId, ProcessModel, ProcessModelCommand};
use projections::audit::{AuditFilter, AuditRow, Page};
use projections::models::query::{ListPage, ModelFilter};
use projections::models::{ModelRow, VersionRow};
use projections::relay::ResumeEvents;
use projections::sqlite::{self as embedded, Family, SqliteConfig, SqliteProjections};
use serde_json::Value;
use sqlx::SqlitePool;
use uuid::Uuid;

use super::{LiveError, ModelTicket, ModelWait, ReadStore, RebuildStart, Started};
use crate::admin::{ProjectionStatus, Rebuilds};
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::read_side::Runners;

/// Opens the database file (creating it), taking the process lock, and applies the
/// embedded migrations.
pub async fn open(settings: &Settings, path: &Path) -> anyhow::Result<EmbeddedStore> {
    let store = commands::sqlite::open(path, settings.database.max_connections).await?;
    commands::sqlite::MIGRATOR
        .run(store.pool())
        .await
        .with_context(|| format!("migrating {} failed", path.display()))?;
    Ok(store)
}

/// The read side over an open store, configured from `settings`.
pub async fn projections(
    settings: &Settings,
    store: &EmbeddedStore,
) -> anyhow::Result<SqliteProjections> {
    let config = SqliteConfig {
        batch_size: settings.projections.batch_size,
        poll_interval: Duration::from_millis(settings.projections.poll_interval_ms),
        ..SqliteConfig::default()
    };
    SqliteProjections::new(store.pool().clone(), config)
        .await
        .context("cannot read the projection checkpoints")
}

/// Opens the embedded backend at `path`.
pub async fn start(settings: &Settings, path: &Path) -> anyhow::Result<Started> {
    let store = open(settings, path).await?;
    let projections = projections(settings, &store).await?;
    tracing::info!(path = %path.display(), "embedded SQLite database open");
    if settings.nats.url.is_some() {
        // The relay reads the PostgreSQL feed; the embedded backend has its own bus.
        tracing::warn!(
            "NATS_URL is ignored without DATABASE_URL: the embedded backend streams events \
             on its in-process bus (GET /api/v1/events/stream)"
        );
    }
    let pool = store.pool().clone();
    let metrics = Metrics::new(pool.clone());
    metrics.register_event_counts(projections.event_counts());
    let mut runners = Runners::default();
    let runner = projections.clone();
    runners.push(move |stop| async move { runner.run(stop).await });
    let commands =
        CommandService::sqlite(pool.clone()).with_state_cache(settings.commands.state_cache_bytes);
    metrics.register_state_cache(commands.state_cache_counts());
    Ok(Started {
        commands: Arc::new(WakingCommands {
            inner: commands,
            projections: projections.clone(),
        }),
        store: Arc::new(SqliteStore {
            pool: pool.clone(),
            projections,
            rebuilds: Rebuilds::default(),
            _store: store,
        }),
        runners,
        metrics,
    })
}

/// The SQLite write side, waking the projector loop after each commit so that
/// read-your-writes waits for one batch, not for a poll interval.
struct WakingCommands {
    inner: CommandService,
    projections: SqliteProjections,
}

#[async_trait]
impl Commands for WakingCommands {
    async fn execute(
        &self,
        id: ModelId,
        command: ProcessModelCommand,
        metadata: &CommandMetadata,
    ) -> Result<Committed, CommandError> {
        let committed = self.inner.execute(id, command, metadata).await?;
        if !committed.events.is_empty() {
            self.projections.notify();
        }
        Ok(committed)
    }

    async fn load(&self, id: ModelId) -> Result<ProcessModel, CommandError> {
        self.inner.load(id).await
    }

    async fn history(&self, id: ModelId) -> Result<Vec<HistoryEvent>, CommandError> {
        self.inner.history(id).await
    }

    async fn record_rejection(
        &self,
        rejection: Rejection,
        metadata: &CommandMetadata,
    ) -> Result<(), CommandError> {
        self.inner.record_rejection(rejection, metadata).await?;
        self.projections.notify();
        Ok(())
    }
}

/// [`ReadStore`] over the embedded database.
struct SqliteStore {
    pool: SqlitePool,
    projections: SqliteProjections,
    rebuilds: Rebuilds,
    /// Keeps the file lock for as long as the store serves.
    _store: EmbeddedStore,
}

#[async_trait]
impl ReadStore for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn model(&self, tenant: &str, id: Uuid) -> Result<Option<ModelRow>, sqlx::Error> {
        embedded::models::get(&self.pool, tenant, id).await
    }

    async fn models(
        &self,
        tenant: &str,
        filter: &ModelFilter,
        page: ListPage,
    ) -> Result<(Vec<ModelRow>, i64), sqlx::Error> {
        embedded::models::list(&self.pool, tenant, filter, page).await
    }

    async fn versions(&self, tenant: &str, id: Uuid) -> Result<Vec<VersionRow>, sqlx::Error> {
        embedded::models::versions(&self.pool, tenant, id).await
    }

    async fn version(
        &self,
        tenant: &str,
        id: Uuid,
        version: i32,
    ) -> Result<Option<VersionRow>, sqlx::Error> {
        embedded::models::version(&self.pool, tenant, id, version).await
    }

    async fn audit_logs(
        &self,
        tenant: &str,
        filter: &AuditFilter,
        page: &Page,
    ) -> Result<(Vec<AuditRow>, i64), sqlx::Error> {
        embedded::audit::list(&self.pool, tenant, filter, page).await
    }

    fn expect_model(&self, _id: Uuid) -> ModelTicket {
        ModelTicket(None)
    }

    async fn wait_for_model(
        &self,
        position: StorePosition,
        _ticket: &ModelTicket,
        timeout: Duration,
    ) -> ModelWait {
        if self
            .projections
            .wait_for(position.global_position, timeout)
            .await
        {
            ModelWait::CaughtUp
        } else {
            ModelWait::TimedOut
        }
    }

    async fn wait_for_stream(&self, aggregate_id: &str, timeout: Duration) -> bool {
        let last: Result<Option<i64>, _> = sqlx::query_scalar(
            "SELECT max(global_position) FROM events WHERE aggregate_type = ? AND aggregate_id = ?",
        )
        .bind(<ProcessModel as cqrs_es::Aggregate>::TYPE)
        .bind(aggregate_id)
        .fetch_one(&self.pool)
        .await;
        match last {
            Ok(Some(position)) => self.projections.wait_for(position, timeout).await,
            Ok(None) => true,
            Err(error) => {
                tracing::warn!(%error, "cannot read the stream's last position");
                false
            }
        }
    }

    async fn models_lag(&self) -> Result<i64, sqlx::Error> {
        Ok(self
            .projections
            .status()
            .await?
            .into_iter()
            .find(|consumer| consumer.name == embedded::MODELS)
            .map_or(0, |consumer| consumer.lag))
    }

    async fn projections(&self) -> Result<Vec<ProjectionStatus>, sqlx::Error> {
        Ok(statuses(&self.projections, Some(&self.rebuilds)).await?)
    }

    fn start_rebuild(&self, name: &str) -> RebuildStart {
        let Some(family) = Family::from_name(name) else {
            return RebuildStart::Unknown;
        };
        let projections = self.projections.clone();
        let started = self
            .rebuilds
            .start(family.name(), move |progress| async move {
                projections.rebuild(family, progress).await
            });
        if started {
            RebuildStart::Started
        } else {
            RebuildStart::AlreadyRunning
        }
    }

    async fn schema(&self) -> Result<SchemaStatus, sqlx::Error> {
        commands::sqlite::schema_status(&self.pool).await
    }

    fn bus_health(&self) -> Option<(bool, Value)> {
        None
    }

    async fn live_events(
        &self,
        tenant: &str,
        last_event_id: Option<i64>,
    ) -> Result<ResumeEvents, LiveError> {
        Ok(self.projections.subscribe(tenant, last_event_id).await?)
    }
}

/// Both consumers as `GET /api/v1/admin/projections` and `projections status` show them.
pub async fn statuses(
    projections: &SqliteProjections,
    rebuilds: Option<&Rebuilds>,
) -> Result<Vec<ProjectionStatus>, sqlx::Error> {
    Ok(projections
        .status()
        .await?
        .into_iter()
        .map(|consumer| ProjectionStatus {
            name: consumer.name.to_owned(),
            checkpoint: Some(consumer.checkpoint),
            lag: consumer.lag,
            lag_seconds: consumer.lag_seconds,
            state: Some(format!("{:?}", consumer.state).to_uppercase()),
            // SQLite keeps one generation of each read model.
            generation: None,
            rebuild: rebuilds.and_then(|r| r.get(consumer.name)),
        })
        .collect())
}
