//! The storage backends behind the API. The choice is made once, at start-up, from
//! configuration ([`crate::config::Backend`]): PostgreSQL + NATS, the production path, or
//! the embedded SQLite file with an in-process event bus, the default when `DATABASE_URL`
//! is not set (DESIGN §7). Handlers see only [`commands::Commands`] and [`ReadStore`]; each
//! backend has one implementation of each.

pub mod postgres;
pub mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use commands::db::SchemaStatus;
use commands::StorePosition;
use projections::audit::{AuditFilter, AuditRow, Page};
use projections::models::query::{ListPage, ModelFilter};
use projections::models::{ModelRow, VersionRow};
use projections::relay::{ResumeError, ResumeEvents};
use serde_json::Value;
use uuid::Uuid;

use crate::admin::ProjectionStatus;
use crate::metrics::Metrics;
use crate::read_side::Runners;

/// An opened backend: what handlers use, and the background work to start with the server.
pub struct Started {
    pub commands: Arc<dyn commands::Commands>,
    pub store: Arc<dyn ReadStore>,
    pub runners: Runners,
    pub metrics: Metrics,
}

/// A registered interest in one model's projected row; `None` where the backend reads the
/// row back instead.
#[derive(Debug)]
pub struct ModelTicket(pub Option<projections::models::Expected>);

/// How a wait for the model tables ended.
#[derive(Debug)]
pub enum ModelWait {
    /// The projector committed the event and handed over the model's row as it wrote it
    /// then (no read needed).
    Row(Box<ModelRow>),
    /// The tables include the event: read the row.
    CaughtUp,
    /// The timeout passed first.
    TimedOut,
}

/// Why a rebuild could not be started.
#[derive(Debug, PartialEq, Eq)]
pub enum RebuildStart {
    Started,
    AlreadyRunning,
    Unknown,
}

/// Why the live event stream cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(transparent)]
    Resume(#[from] ResumeError),
    #[error("{0}")]
    Unavailable(String),
}

/// The read side and its state, as handlers need them. Every query is tenant-scoped.
#[async_trait]
pub trait ReadStore: Send + Sync + 'static {
    /// The backend's name for `/actuator/info` and logs.
    fn kind(&self) -> &'static str;

    async fn model(&self, tenant: &str, id: Uuid) -> Result<Option<ModelRow>, sqlx::Error>;

    async fn models(
        &self,
        tenant: &str,
        filter: &ModelFilter,
        page: ListPage,
    ) -> Result<(Vec<ModelRow>, i64), sqlx::Error>;

    async fn versions(&self, tenant: &str, id: Uuid) -> Result<Vec<VersionRow>, sqlx::Error>;

    async fn version(
        &self,
        tenant: &str,
        id: Uuid,
        version: i32,
    ) -> Result<Option<VersionRow>, sqlx::Error>;

    async fn audit_logs(
        &self,
        tenant: &str,
        filter: &AuditFilter,
        page: &Page,
    ) -> Result<(Vec<AuditRow>, i64), sqlx::Error>;

    /// Registers interest in model `id`'s next projected row, before a command on it is
    /// executed, so that [`Self::wait_for_model`] can hand it over without a read.
    fn expect_model(&self, id: Uuid) -> ModelTicket;

    /// Waits until the model tables include the event at `position` of `ticket`'s model.
    async fn wait_for_model(
        &self,
        position: StorePosition,
        ticket: &ModelTicket,
        timeout: Duration,
    ) -> ModelWait;

    /// Waits until the model tables include every event of `aggregate_id` stored so far.
    async fn wait_for_stream(&self, aggregate_id: &str, timeout: Duration) -> bool;

    /// Committed events the model projection has not applied yet.
    async fn models_lag(&self) -> Result<i64, sqlx::Error>;

    /// Every consumer's checkpoint, lag and state.
    async fn projections(&self) -> Result<Vec<ProjectionStatus>, sqlx::Error>;

    /// Starts rebuilding the read model `name` in the background.
    fn start_rebuild(&self, name: &str) -> RebuildStart;

    /// How the schema compares to this build's migrations.
    async fn schema(&self) -> Result<SchemaStatus, sqlx::Error>;

    /// The event bus's health for readiness (`None`: the backend has none to report).
    fn bus_health(&self) -> Option<(bool, Value)>;

    /// `tenant`'s events after `last_event_id` (stored backlog), then live.
    async fn live_events(
        &self,
        tenant: &str,
        last_event_id: Option<i64>,
    ) -> Result<ResumeEvents, LiveError>;
}
