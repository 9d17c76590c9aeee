//! Building the application from settings, and running it until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::FromRef;
use axum::serve::ListenerExt as _;
use axum_server::tls_rustls::RustlsConfig;
use commands::Commands;
use tokio::net::TcpListener;

use crate::auth::Authenticator;
use crate::backend::{self, ReadStore};
use crate::config::{Backend, Settings};
use crate::dev_secret;
use crate::metrics::Metrics;
use crate::read_side::Runners;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub commands: Arc<dyn Commands>,
    pub store: Arc<dyn ReadStore>,
    /// How long a command waits for the read tables to include its events.
    pub read_your_writes_timeout: Duration,
    /// Readiness fails when the model projection is further behind than this.
    pub readiness_max_lag: i64,
    pub auth: Authenticator,
    pub limits: crate::limits::Limits,
    pub metrics: Metrics,
    pub info: Arc<BuildInfo>,
}

/// What `/actuator/info` reports.
#[derive(Debug, serde::Serialize)]
pub struct BuildInfo {
    pub version: &'static str,
    pub commit: &'static str,
    pub build_time: &'static str,
    pub profile: &'static str,
}

impl FromRef<AppState> for Metrics {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}

impl FromRef<AppState> for Authenticator {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    shutdown_grace: Duration,
    auth: Authenticator,
    runners: Runners,
    tls: Option<RustlsConfig>,
}

impl Application {
    /// Opens the configured backend (PostgreSQL: waits for it, migrates where the profile
    /// says so, refuses a schema that is behind; SQLite: opens and migrates the file), and
    /// binds the port (0 picks a free one).
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let auth = authenticator(settings)?;
        let started = match settings.backend() {
            Backend::Postgres(url) => backend::postgres::start(settings, url.expose()).await?,
            Backend::Sqlite(path) => backend::sqlite::start(settings, &path).await?,
        };
        tracing::info!(backend = started.store.kind(), "storage ready");
        let limits = crate::limits::Limits::new(&settings.limits);
        let state = AppState {
            commands: started.commands,
            store: started.store,
            read_your_writes_timeout: Duration::from_millis(
                settings.projections.read_your_writes_timeout_ms,
            ),
            readiness_max_lag: settings.projections.readiness_max_lag,
            metrics: started.metrics,
            limits: limits.clone(),
            auth: auth.clone(),
            info: Arc::new(BuildInfo {
                version: env!("CARGO_PKG_VERSION"),
                commit: option_env!("FLOWABLE_UI_GIT_COMMIT").unwrap_or("unknown"),
                build_time: option_env!("FLOWABLE_UI_BUILD_TIME").unwrap_or("unknown"),
                profile: settings.profile.as_str(),
            }),
        };
        let mut runners = started.runners;
        // Idle clients' rate-limit buckets are full again: forget them, keep memory bounded.
        runners.push(move |stop| async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    () = &mut stop => break,
                    _ = every.tick() => limits.forget_idle(),
                }
            }
        });
        let router = crate::http::router(state, &settings.server, &settings.limits);
        let tls = match (
            &settings.server.tls_cert_path,
            &settings.server.tls_key_path,
        ) {
            (Some(cert), Some(key)) => Some(
                RustlsConfig::from_pem_file(cert, key)
                    .await
                    .with_context(|| {
                        format!(
                            "TLS_CERT_PATH/TLS_KEY_PATH: cannot load {} and {}",
                            cert.display(),
                            key.display()
                        )
                    })?,
            ),
            _ => None,
        };
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&address)
            .await
            .with_context(|| format!("could not listen on {address}"))?;
        Ok(Self {
            listener,
            router,
            shutdown_grace: Duration::from_secs(settings.server.shutdown_grace_secs),
            auth,
            runners,
            tls,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    pub fn authenticator(&self) -> &Authenticator {
        &self.auth
    }

    /// Serves until SIGTERM or Ctrl-C, then drains in-flight requests.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes, then drains in-flight requests for at most the
    /// configured grace period.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_workers, _) = tokio::sync::watch::channel(false);
        let workers = self.runners.spawn(&stop_workers);
        let make_service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let result = match self.tls {
            None => serve_plain(self.listener, make_service, shutdown, self.shutdown_grace).await,
            Some(tls) => {
                serve_tls(
                    self.listener,
                    tls,
                    make_service,
                    shutdown,
                    self.shutdown_grace,
                )
                .await
            }
        };
        let stop = stop_workers;
        // The server is done: stop the projectors (each finishes its batch and releases its
        // lock so a standby replica takes over at once).
        let _ = stop.send(true);
        for worker in workers {
            if let Err(error) = worker.await {
                tracing::error!(%error, "a background worker failed");
            }
        }
        result
    }
}

type MakeService =
    axum::extract::connect_info::IntoMakeServiceWithConnectInfo<axum::Router, SocketAddr>;

/// Plain HTTP (behind an ingress that terminates TLS).
async fn serve_plain(
    listener: TcpListener,
    make_service: MakeService,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> anyhow::Result<()> {
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    // Small writes (server-sent events above all) go out at once: with Nagle's algorithm a
    // client's delayed ACK held each event back by up to 40 ms.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, make_service).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: draining in-flight requests");
        let _ = tx.send(true);
    });
    let drained = async move {
        let _ = rx.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result.context("server error"),
        () = drained => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish in time");
            Ok(())
        }
    }
}

/// HTTPS terminated here with rustls (`TLS_CERT_PATH`, `TLS_KEY_PATH`).
async fn serve_tls(
    listener: TcpListener,
    tls: RustlsConfig,
    make_service: MakeService,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> anyhow::Result<()> {
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: draining in-flight requests");
        stopper.graceful_shutdown(Some(grace));
    });
    axum_server::from_tcp_rustls(listener.into_std()?, tls)?
        .handle(handle)
        .serve(make_service)
        .await
        .context("server error")
}

/// The token verifier from settings: HS256 secret (configured or, in dev, generated) and/or
/// an RS256 public key.
pub fn authenticator(settings: &Settings) -> anyhow::Result<Authenticator> {
    let secret = match &settings.auth.jwt_secret {
        Some(secret) => Some(secret.expose().as_bytes().to_vec()),
        None if settings.auth.generate_dev_secret && !settings.profile.is_production_like() => {
            Some(dev_secret::load_or_create(&settings.data_dir)?.into_bytes())
        }
        None => None,
    };
    let public_key = settings
        .auth
        .jwt_public_key_path
        .as_ref()
        .map(|path| {
            std::fs::read(path)
                .with_context(|| format!("JWT_PUBLIC_KEY_PATH: cannot read {}", path.display()))
        })
        .transpose()?;
    Authenticator::new(
        secret.as_deref(),
        public_key.as_deref(),
        Duration::from_secs(settings.auth.leeway_secs),
        settings.auth.issuer.clone(),
        settings.auth.audience.clone(),
    )
    .context("JWT_PUBLIC_KEY_PATH")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
