//! The production backend: PostgreSQL read tables kept by checkpointed projector runners
//! (advisory-lock fail-over across replicas), and the live stream from NATS JetStream.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use commands::db::{self, PoolSettings, SchemaStatus};
use commands::{CommandService, StorePosition};
use projections::audit::{self, AuditFilter, AuditRow, Page};
use projections::models::query::{self, ListPage, ModelFilter};
use projections::models::{ModelRow, VersionRow};
use projections::relay::{resume_stream, RelayState, ResumeEvents, ResumeOptions};
use projections::Position;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use super::{LiveError, ModelTicket, ModelWait, ReadStore, RebuildStart, Started};
use crate::admin::{self, ProjectionStatus, Rebuilds};
use crate::config::{ProjectionSettings, Settings};
use crate::metrics::Metrics;
use crate::read_side::{self, ReadSide};
use crate::relay::Relay;

/// Connects to PostgreSQL (waiting for it), creates and migrates the database where the
/// profile says so, refuses a schema that is behind, and connects the NATS relay.
pub async fn start(settings: &Settings, url: &str) -> anyhow::Result<Started> {
    if settings.database.create_if_missing && !settings.profile.is_production_like() {
        db::create_database_if_missing(url)
            .await
            .context("could not create the database")?;
    }
    let pool = db::connect_with_retry(
        url,
        &PoolSettings {
            max_connections: settings.database.max_connections,
            acquire_timeout: Duration::from_secs(settings.database.acquire_timeout_secs),
        },
        Duration::from_secs(settings.database.connect_wait_secs),
    )
    .await
    .context("could not connect to the database")?;
    if settings.database.migrate_on_start && !settings.profile.is_production_like() {
        db::migrate(&pool).await.context("migrations failed")?;
    }
    let schema = db::schema_status(&pool)
        .await
        .context("could not read the schema version")?;
    if !schema.is_current() {
        anyhow::bail!(
            "the database schema is behind this build (pending migrations {:?}); run `flowable-ui migrate`",
            schema.pending
        );
    }
    let relay = Relay::from_settings(&settings.nats);
    if let Some(relay) = &relay {
        relay
            .relay
            .start()
            .await
            .context("NATS_URL: cannot use this address")?;
        // NATS being down delays the fan-out, never the service: wait briefly, then go on
        // degraded (readiness says so) while the relay keeps reconnecting.
        if !relay.relay.wait_ready(Duration::from_secs(5)).await {
            tracing::warn!("NATS is not reachable yet; events will be relayed once it is");
        }
    }
    let metrics = Metrics::new(pool.clone());
    if let Some(relay) = &relay {
        metrics.register_relay(relay.relay.status_handle());
        metrics.register_event_counts(relay.relay.status_handle().event_counts());
    }
    let (read, runners) = read_side::build(&pool, &settings.projections, relay);
    metrics.register_projectors(read.handles());
    let commands = CommandService::postgres(pool.clone())
        .with_state_cache(settings.commands.state_cache_bytes);
    metrics.register_state_cache(commands.state_cache_counts());
    Ok(Started {
        commands: Arc::new(commands),
        store: Arc::new(PostgresStore::new(pool, read, settings.projections.clone())),
        runners,
        metrics,
    })
}

/// [`ReadStore`] over PostgreSQL.
pub struct PostgresStore {
    pool: PgPool,
    read: ReadSide,
    rebuilds: Rebuilds,
    /// How rebuilds started through the API run.
    settings: ProjectionSettings,
}

impl PostgresStore {
    pub fn new(pool: PgPool, read: ReadSide, settings: ProjectionSettings) -> Self {
        Self {
            pool,
            read,
            rebuilds: Rebuilds::default(),
            settings,
        }
    }
}

#[async_trait]
impl ReadStore for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgresql"
    }

    async fn model(&self, tenant: &str, id: Uuid) -> Result<Option<ModelRow>, sqlx::Error> {
        query::get(&self.pool, tenant, id).await
    }

    async fn models(
        &self,
        tenant: &str,
        filter: &ModelFilter,
        page: ListPage,
    ) -> Result<(Vec<ModelRow>, i64), sqlx::Error> {
        query::list(&self.pool, tenant, filter, page).await
    }

    async fn versions(&self, tenant: &str, id: Uuid) -> Result<Vec<VersionRow>, sqlx::Error> {
        query::versions(&self.pool, tenant, id).await
    }

    async fn version(
        &self,
        tenant: &str,
        id: Uuid,
        version: i32,
    ) -> Result<Option<VersionRow>, sqlx::Error> {
        query::version(&self.pool, tenant, id, version).await
    }

    async fn audit_logs(
        &self,
        tenant: &str,
        filter: &AuditFilter,
        page: &Page,
    ) -> Result<(Vec<AuditRow>, i64), sqlx::Error> {
        audit::list(&self.pool, tenant, filter, page).await
    }

    fn expect_model(&self, id: Uuid) -> ModelTicket {
        ModelTicket(Some(self.read.handover.expect(id)))
    }

    async fn wait_for_model(
        &self,
        position: StorePosition,
        ticket: &ModelTicket,
        timeout: Duration,
    ) -> ModelWait {
        // Transaction ids are xid8 values, never negative.
        let tx_id = u64::try_from(position.tx_id).unwrap_or_default();
        let caught_up = self
            .read
            .models
            .wait_for(Position::new(tx_id, position.global_position), timeout)
            .await;
        if !caught_up {
            return ModelWait::TimedOut;
        }
        // The ticket was taken before the command ran, so the batch that carried its event
        // handed the row over, unless that batch was applied on another replica (then the
        // row, if any, is older: the caller compares revisions).
        match ticket.0.as_ref().and_then(|expected| expected.row()) {
            Some(row) => ModelWait::Row(Box::new(row)),
            None => ModelWait::CaughtUp,
        }
    }

    async fn wait_for_stream(&self, aggregate_id: &str, timeout: Duration) -> bool {
        self.read
            .models
            .wait_for_aggregate(
                <domain::ProcessModel as cqrs_es::Aggregate>::TYPE,
                aggregate_id,
                timeout,
            )
            .await
            .unwrap_or(false)
    }

    async fn models_lag(&self) -> Result<i64, sqlx::Error> {
        self.read.models.lag().await.map_err(admin::feed_error)
    }

    async fn projections(&self) -> Result<Vec<ProjectionStatus>, sqlx::Error> {
        admin::status(&self.pool, &self.read.handles(), Some(&self.rebuilds)).await
    }

    fn start_rebuild(&self, name: &str) -> RebuildStart {
        let Some(model) = admin::find(name, &self.settings) else {
            return RebuildStart::Unknown;
        };
        let pool = self.pool.clone();
        let settings = self.settings.clone();
        let started = self
            .rebuilds
            .start(model.family(), move |progress| async move {
                admin::rebuild(&pool, model.as_ref(), &settings, progress).await
            });
        if started {
            RebuildStart::Started
        } else {
            RebuildStart::AlreadyRunning
        }
    }

    async fn schema(&self) -> Result<SchemaStatus, sqlx::Error> {
        commands::db::schema_status(&self.pool).await
    }

    fn bus_health(&self) -> Option<(bool, Value)> {
        let (relay, _) = self.read.relay.as_ref()?;
        let status = relay.status();
        let connected = status.state == RelayState::Connected;
        Some((
            connected,
            json!({
                "status": if connected { "UP" } else { "DEGRADED" },
                "details": serde_json::to_value(&status).unwrap_or(Value::Null),
            }),
        ))
    }

    async fn live_events(
        &self,
        tenant: &str,
        last_event_id: Option<i64>,
    ) -> Result<ResumeEvents, LiveError> {
        let Some((relay, _)) = &self.read.relay else {
            return Err(LiveError::Unavailable(
                "the live event stream needs NATS (set NATS_URL)".into(),
            ));
        };
        let Some(js) = relay.relay.jetstream() else {
            return Err(LiveError::Unavailable("NATS is not connected yet".into()));
        };
        Ok(resume_stream(
            self.pool.clone(),
            js,
            &relay.settings,
            tenant,
            last_event_id,
            ResumeOptions::default(),
        )
        .await?)
    }
}
