//! The projectors this replica runs (each active on one replica at a time, the others on
//! standby), and the handles the API uses to wait for them (read-your-writes) and report
//! their state.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use projections::audit::AuditProjector;
use projections::models::{Handover, ModelsProjector};
use projections::{ProjectorHandle, ProjectorRunner, RunnerConfig};
use sqlx::PgPool;
use tokio::sync::watch;

use crate::config::ProjectionSettings;
use crate::relay::Relay;

/// What handlers need of the read side.
#[derive(Clone)]
pub struct ReadSide {
    pub models: ProjectorHandle,
    /// The rows the models projector hands to requests waiting for them, when it runs
    /// here (read-your-writes without reading the row back).
    pub handover: Handover,
    pub audit: ProjectorHandle,
    /// The NATS relay and its runner, when NATS is configured.
    pub relay: Option<(Relay, ProjectorHandle)>,
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
}

type RunnerFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The runners, not yet started.
#[derive(Default)]
pub struct Runners {
    runners: Vec<Box<dyn FnOnce(watch::Receiver<bool>) -> RunnerFuture + Send>>,
}

impl Runners {
    /// Adds a background task; it gets a future that completes when the server stops.
    pub fn push<F>(
        &mut self,
        run: impl FnOnce(Pin<Box<dyn Future<Output = ()> + Send>>) -> F + Send + 'static,
    ) where
        F: Future<Output = ()> + Send + 'static,
    {
        self.runners
            .push(Box::new(move |stop: watch::Receiver<bool>| {
                Box::pin(run(Box::pin(stopped(stop)))) as RunnerFuture
            }));
    }

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
        batch_bytes: settings.batch_bytes,
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
    let handover = Handover::default();
    let models = ProjectorRunner::new(
        pool.clone(),
        Arc::new(ModelsProjector::live().with_handover(handover.clone())),
        runner_config(settings),
    );
    let audit = ProjectorRunner::new(
        pool.clone(),
        Arc::new(AuditProjector::live()),
        match settings.audit_poll_interval_ms {
            0 => runner_config(settings),
            every => RunnerConfig {
                poll_interval: Duration::from_millis(every),
                notifications: false,
                ..runner_config(settings)
            },
        },
    );
    let relay_runner = relay.as_ref().map(|relay| {
        ProjectorRunner::new(
            pool.clone(),
            relay.relay.clone(),
            RunnerConfig {
                // Refusals while NATS is down are cheap; retry soon after it returns.
                retry_max: Duration::from_secs(2),
                batch_size: relay.batch_size,
                ..runner_config(settings)
            },
        )
    });
    let read = ReadSide {
        models: models.handle(),
        handover,
        audit: audit.handle(),
        relay: relay.zip(relay_runner.as_ref().map(ProjectorRunner::handle)),
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
