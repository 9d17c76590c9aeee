//! The projectors this replica runs (each active on one replica at a time, the others on
//! standby), and the handles the API uses to wait for them (read-your-writes) and report
//! their state.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use projections::audit::AuditProjector;
use projections::models::ModelsProjector;
use projections::{Position, ProjectorHandle, ProjectorRunner, RunnerConfig};
use sqlx::PgPool;
use tokio::sync::watch;

use crate::config::ProjectionSettings;
use crate::relay::Relay;

/// What handlers need of the read side.
#[derive(Clone)]
pub struct ReadSide {
    pub models: ProjectorHandle,
    pub audit: ProjectorHandle,
    /// The NATS relay and its runner, when NATS is configured.
    pub relay: Option<(Relay, ProjectorHandle)>,
    /// How long a command waits for the read tables to include its events.
    pub read_your_writes_timeout: Duration,
    /// Readiness fails when the model projection is further behind than this.
    pub readiness_max_lag: i64,
}

impl ReadSide {
    /// Handles of every consumer this replica runs.
    pub fn handles(&self) -> Vec<projections::ProjectorHandle> {
        let mut handles = vec![self.models.clone(), self.audit.clone()];
        if let Some((_, handle)) = &self.relay {
            handles.push(handle.clone());
        }
        handles
    }

    /// Waits until the model projection has applied the event at `position`; `false` when
    /// the wait timed out (the command still succeeded).
    pub async fn wait_for_models(&self, position: Position) -> bool {
        self.models
            .wait_for(position, self.read_your_writes_timeout)
            .await
    }
}

type RunnerFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The runners, not yet started.
pub struct Runners {
    runners: Vec<Box<dyn FnOnce(watch::Receiver<bool>) -> RunnerFuture + Send>>,
}

impl Runners {
    /// Starts every runner; they stop when `stop` turns true.
    pub fn spawn(self, stop: &watch::Sender<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        self.runners
            .into_iter()
            .map(|start| tokio::spawn(start(stop.subscribe())))
            .collect()
    }
}

fn runner_config(settings: &ProjectionSettings) -> RunnerConfig {
    RunnerConfig {
        batch_size: settings.batch_size,
        poll_interval: Duration::from_millis(settings.poll_interval_ms),
        ..RunnerConfig::default()
    }
}

/// Builds the projector runners for `pool` and the handles to them.
pub fn build(
    pool: &PgPool,
    settings: &ProjectionSettings,
    relay: Option<Relay>,
) -> (ReadSide, Runners) {
    let models = ProjectorRunner::new(
        pool.clone(),
        Arc::new(ModelsProjector::live()),
        runner_config(settings),
    );
    let audit = ProjectorRunner::new(
        pool.clone(),
        Arc::new(AuditProjector::live()),
        runner_config(settings),
    );
    let relay_runner = relay.as_ref().map(|relay| {
        ProjectorRunner::new(
            pool.clone(),
            relay.relay.clone(),
            RunnerConfig {
                // Refusals while NATS is down are cheap; retry soon after it returns.
                retry_max: Duration::from_secs(2),
                ..runner_config(settings)
            },
        )
    });
    let read = ReadSide {
        models: models.handle(),
        audit: audit.handle(),
        relay: relay.zip(relay_runner.as_ref().map(ProjectorRunner::handle)),
        read_your_writes_timeout: Duration::from_millis(settings.read_your_writes_timeout_ms),
        readiness_max_lag: settings.readiness_max_lag,
    };
    let mut runners = Runners {
        runners: vec![
            Box::new(move |stop: watch::Receiver<bool>| {
                Box::pin(models.run(stopped(stop))) as RunnerFuture
            }),
            Box::new(move |stop: watch::Receiver<bool>| {
                Box::pin(audit.run(stopped(stop))) as RunnerFuture
            }),
        ],
    };
    if let Some(runner) = relay_runner {
        runners
            .runners
            .push(Box::new(move |stop: watch::Receiver<bool>| {
                Box::pin(runner.run(stopped(stop))) as RunnerFuture
            }));
    }
    (read, runners)
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
