//! Building the application from settings, and running it until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::FromRef;
use axum_server::tls_rustls::RustlsConfig;
use commands::db::{self, PoolSettings};
use commands::CommandService;
use tokio::net::TcpListener;

use crate::auth::Authenticator;
use crate::config::Settings;
use crate::dev_secret;
use crate::metrics::Metrics;
use crate::read_side::{self, ReadSide, Runners};
use crate::relay::Relay;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub commands: Arc<CommandService>,
    pub read: ReadSide,
    pub rebuilds: crate::admin::Rebuilds,
    pub auth: Authenticator,
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
    /// Connects to the database (waiting for it), migrates where the profile says so,
    /// refuses a schema that is behind, and binds the port (0 picks a free one).
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let url = settings
            .database
            .url
            .as_ref()
            .context("DATABASE_URL is required")?
            .expose()
            .to_owned();
        if settings.database.create_if_missing && !settings.profile.is_production_like() {
            db::create_database_if_missing(&url)
                .await
                .context("could not create the database")?;
        }
        let pool = db::connect_with_retry(
            &url,
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
        let auth = authenticator(settings)?;
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
        }
        let (read, runners) = read_side::build(&pool, &settings.projections, relay);
        let state = AppState {
            read,
            rebuilds: crate::admin::Rebuilds::default(),
            metrics,
            commands: Arc::new(CommandService::new(pool)),
            auth: auth.clone(),
            info: Arc::new(BuildInfo {
                version: env!("CARGO_PKG_VERSION"),
                commit: option_env!("FLOWABLE_UI_GIT_COMMIT").unwrap_or("unknown"),
                build_time: option_env!("FLOWABLE_UI_BUILD_TIME").unwrap_or("unknown"),
                profile: settings.profile.as_str(),
            }),
        };
        let router = crate::http::router(state, &settings.server);
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
