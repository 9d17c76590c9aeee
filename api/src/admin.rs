//! Projection administration: which read models exist, their state, and rebuilds (from
//! the CLI or the admin API).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use projections::audit::AuditRebuild;
use projections::models::ModelsRebuild;
use projections::rebuild::{self, Progress, RebuildError, RebuildReport, Rebuildable};
use projections::{checkpoint, feed, Position, ProjectorHandle};
use serde::Serialize;
use sqlx::PgPool;

use crate::config::ProjectionSettings;

/// Every read model that can be rebuilt, by name, with the rebuild settings of `settings`.
pub fn rebuildables(settings: &ProjectionSettings) -> Vec<Arc<dyn Rebuildable>> {
    let memory = usize::try_from(settings.rebuild_memory_bytes).unwrap_or(usize::MAX);
    vec![
        Arc::new(ModelsRebuild::with_memory(memory)),
        Arc::new(AuditRebuild),
    ]
}

/// The names of the read models that can be rebuilt.
pub fn families() -> [&'static str; 2] {
    [projections::models::FAMILY, projections::audit::FAMILY]
}

pub fn find(name: &str, settings: &ProjectionSettings) -> Option<Arc<dyn Rebuildable>> {
    rebuildables(settings)
        .into_iter()
        .find(|r| r.family() == name)
}

/// Rebuilds one read model.
pub async fn rebuild(
    pool: &PgPool,
    model: &dyn Rebuildable,
    settings: &ProjectionSettings,
    progress: impl FnMut(Progress) + Send,
) -> Result<RebuildReport, RebuildError> {
    let options = pool.connect_options();
    let batch = settings.rebuild_batch_size.max(1);
    rebuild::rebuild(pool, &options, model, batch, progress).await
}

/// One consumer's state, as `GET /api/v1/admin/projections` and `projections status` show it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionStatus {
    pub name: String,
    /// The last event the consumer has applied; `null` before the first.
    #[schema(value_type = Option<crate::http::openapi::schemas::PositionDoc>)]
    pub checkpoint: Option<Position>,
    /// Committed events after the checkpoint.
    pub lag: i64,
    /// Age in seconds of the oldest of them (`None` when caught up).
    pub lag_seconds: Option<f64>,
    /// This replica's runner: RUNNING, STANDBY (another replica holds the lock), FAILING, IDLE;
    /// `null` when this process runs no such consumer (the CLI).
    pub state: Option<String>,
    pub generation: Option<i64>,
    pub rebuild: Option<RebuildStatus>,
}

/// The latest rebuild started by this process.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RebuildStatus {
    pub running: bool,
    pub done: u64,
    pub total: u64,
    pub error: Option<String>,
    pub generation: Option<i64>,
    pub seconds: Option<f64>,
}

/// Rebuilds started through the API, by read-model name.
#[derive(Clone, Default)]
pub struct Rebuilds {
    inner: Arc<Mutex<HashMap<&'static str, RebuildStatus>>>,
}

impl Rebuilds {
    fn update(&self, name: &'static str, f: impl FnOnce(&mut RebuildStatus)) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(name).or_insert(RebuildStatus {
            running: false,
            done: 0,
            total: 0,
            error: None,
            generation: None,
            seconds: None,
        });
        f(entry);
    }

    pub fn get(&self, name: &str) -> Option<RebuildStatus> {
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.get(name).cloned()
    }

    /// Starts `run` (a rebuild of `name`, fed a progress callback) in the background;
    /// `false` if this process is already running one of `name`.
    pub fn start<F, Fut>(&self, name: &'static str, run: F) -> bool
    where
        F: FnOnce(Box<dyn FnMut(Progress) + Send>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<RebuildReport, RebuildError>> + Send + 'static,
    {
        let mut already = false;
        self.update(name, |status| {
            already = status.running;
            if !already {
                *status = RebuildStatus {
                    running: true,
                    done: 0,
                    total: 0,
                    error: None,
                    generation: None,
                    seconds: None,
                };
            }
        });
        if already {
            return false;
        }
        let rebuilds = self.clone();
        tokio::spawn(async move {
            let tracker = rebuilds.clone();
            let result = run(Box::new(move |p: Progress| {
                tracker.update(name, |s| {
                    s.done = p.done;
                    s.total = p.total;
                });
            }))
            .await;
            rebuilds.update(name, |s| {
                s.running = false;
                match result {
                    Ok(report) => {
                        s.generation = Some(report.generation);
                        s.seconds = Some(report.seconds);
                    }
                    Err(error) => {
                        tracing::error!(projection = name, %error, "rebuild failed");
                        s.error = Some(error.to_string());
                    }
                }
            });
        });
        true
    }
}

/// The state of every consumer with a checkpoint, plus the local runners' states.
pub async fn status(
    pool: &PgPool,
    handles: &[ProjectorHandle],
    rebuilds: Option<&Rebuilds>,
) -> Result<Vec<ProjectionStatus>, sqlx::Error> {
    let checkpoints = checkpoint::list(pool).await.map_err(feed_error)?;
    let mut names: Vec<String> = checkpoints.iter().map(|c| c.name.clone()).collect();
    for handle in handles {
        if !names.iter().any(|n| n == handle.name()) {
            names.push(handle.name().to_owned());
        }
    }
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let position = checkpoints
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.position);
        let (lag, lag_seconds) = feed::lag_after(pool, position.unwrap_or(Position::START))
            .await
            .map_err(feed_error)?;
        let state = handles
            .iter()
            .find(|h| h.name() == name)
            .map(|h| format!("{:?}", h.status().state).to_uppercase());
        let generation = match families().into_iter().find(|family| *family == name) {
            Some(family) => Some(projections::generation::active(pool, family).await?),
            None => None,
        };
        out.push(ProjectionStatus {
            rebuild: rebuilds.and_then(|r| r.get(&name)),
            name,
            checkpoint: position,
            lag,
            lag_seconds,
            state,
            generation,
        });
    }
    Ok(out)
}

pub(crate) fn feed_error(error: projections::FeedError) -> sqlx::Error {
    match error {
        projections::FeedError::Database(e) => e,
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Profile, Settings};

    #[test]
    fn every_rebuildable_read_model_is_named_in_families() {
        let settings = Settings::defaults(Profile::Test).projections;
        let names: Vec<&str> = rebuildables(&settings).iter().map(|r| r.family()).collect();
        assert_eq!(names, families());
        assert!(find("process_models", &settings).is_some());
        assert!(find("nope", &settings).is_none());
    }
}
