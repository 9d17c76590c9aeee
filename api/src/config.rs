//! Layered configuration: built-in defaults → the profile's file (embedded from
//! `deploy/config/<profile>.toml`) → an optional file named by `APP_CONFIG_FILE` → the
//! environment. Secrets come only from the environment and never print.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// The deployment profile, from `APP_PROFILE` (default `dev`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Dev,
    Test,
    Staging,
    Prod,
}

impl Profile {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Test => "test",
            Self::Staging => "staging",
            Self::Prod => "prod",
        }
    }

    /// Staging and production never change the schema or invent secrets.
    pub fn is_production_like(&self) -> bool {
        matches!(self, Self::Staging | Self::Prod)
    }

    fn file(&self) -> &'static str {
        match self {
            Self::Dev => include_str!("../../deploy/config/dev.toml"),
            Self::Test => include_str!("../../deploy/config/test.toml"),
            Self::Staging => include_str!("../../deploy/config/staging.toml"),
            Self::Prod => include_str!("../../deploy/config/prod.toml"),
        }
    }
}

impl FromStr for Profile {
    type Err = ConfigError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "dev" | "development" => Ok(Self::Dev),
            "test" => Ok(Self::Test),
            "staging" => Ok(Self::Staging),
            "prod" | "production" => Ok(Self::Prod),
            other => Err(ConfigError::Invalid {
                key: "APP_PROFILE",
                reason: format!("'{other}' is not one of dev, test, staging, prod"),
            }),
        }
    }
}

/// A secret: usable, but `Debug`/`Display` print `***`.
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub profile: Profile,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub commands: CommandSettings,
    pub auth: AuthSettings,
    pub log: LogSettings,
    pub projections: ProjectionSettings,
    pub nats: NatsSettings,
    pub limits: crate::limits::LimitSettings,
    /// Where local state lives (the generated development secret).
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    pub request_timeout_secs: u64,
    /// How long SIGTERM waits for in-flight requests.
    pub shutdown_grace_secs: u64,
    /// PEM certificate chain: with `tls_key_path`, the server speaks HTTPS itself.
    pub tls_cert_path: Option<PathBuf>,
    /// PEM private key for `tls_cert_path`.
    pub tls_key_path: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// From `DATABASE_URL`; it may carry a password, so it is a secret. When set, the
    /// PostgreSQL backend is used; without it (dev and test only) the embedded SQLite file.
    pub url: Option<Secret>,
    /// The embedded database file (default `<data_dir>/flowable-ui.db`).
    pub sqlite_path: Option<PathBuf>,
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
    /// How long start-up waits for the database to become reachable.
    pub connect_wait_secs: u64,
    pub create_if_missing: bool,
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSettings {
    /// The state of recently written models is kept up to this many bytes (serialized as
    /// JSON), so a command on one of them skips loading it from the event store, and a
    /// create is decided on a stream assumed new; the append still checks either against
    /// the store. 0 turns both off.
    pub state_cache_bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 secret, from `JWT_SECRET`.
    pub jwt_secret: Option<Secret>,
    /// RS256 public key (PEM), from `JWT_PUBLIC_KEY_PATH`.
    pub jwt_public_key_path: Option<PathBuf>,
    /// Clock skew tolerated on `exp`/`nbf`.
    pub leeway_secs: u64,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Dev only: without a secret, generate one and keep it in `data_dir`.
    pub generate_dev_secret: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectionSettings {
    /// Most events a projector applies in one transaction.
    pub batch_size: i64,
    /// A batch also ends once its events' stored payloads reach this many bytes: it bounds
    /// a catch-up's memory when events carry large editor documents.
    pub batch_bytes: i64,
    /// How often projectors re-read the feed when no notification arrives.
    pub poll_interval_ms: u64,
    /// When above 0, the audit projector does not wake on every append's notification: it
    /// reads the feed this often, so an audit entry appears up to this late. Nobody waits
    /// for it (commands wait for the model projection only), and under load this saves
    /// PostgreSQL a notification delivery and most of a projector batch per command
    /// (docs/performance.md, "Audit projector on a timer"). 0 makes it wake on
    /// notifications like the model projector.
    pub audit_poll_interval_ms: u64,
    /// How long a command waits for the read tables to include its events before it
    /// answers anyway (saying so in `X-Read-Your-Writes: timeout`).
    pub read_your_writes_timeout_ms: u64,
    /// Readiness reports DOWN while the model projection lags more events than this.
    pub readiness_max_lag: i64,
    /// The memory, in bytes, a `process_models` rebuild may hold: it folds the feed in
    /// memory and writes each model once, or once per window of about this size, so more
    /// memory means fewer writes when there are many models (docs/performance.md). A model
    /// takes ≈ 1 KB, and ≈ 4 KB more until it is first written with a small editor JSON.
    pub rebuild_memory_bytes: u64,
    /// Events a rebuild reads per batch: large batches, few round trips.
    pub rebuild_batch_size: i64,
}

/// The event fan-out. Without `url` (`NATS_URL`) nothing is relayed and the live event
/// stream is unavailable.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSettings {
    /// May carry credentials, so it is a secret.
    pub url: Option<Secret>,
    pub stream: String,
    pub subject_prefix: String,
    /// How long JetStream keeps an event (PostgreSQL keeps it forever).
    pub max_age_secs: u64,
    /// The stream's size limit; -1 for none.
    pub max_bytes: i64,
    /// Copies per message in a NATS cluster.
    pub replicas: usize,
    /// How long JetStream de-duplicates re-sent events by `Nats-Msg-Id`.
    pub duplicate_window_secs: u64,
    /// Events the relay publishes per batch (one PostgreSQL transaction with its
    /// checkpoint): larger batches catch up a backlog faster.
    pub batch_size: i64,
    /// Publishes awaiting their acknowledgement at once (the pipelining window).
    pub max_outstanding_acks: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// An `EnvFilter` directive; `RUST_LOG` overrides it.
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Settings {
    pub(crate) fn defaults(profile: Profile) -> Self {
        Self {
            profile,
            server: ServerSettings {
                host: "0.0.0.0".into(),
                port: 8080,
                body_limit_bytes: 10 * 1024 * 1024,
                request_timeout_secs: 30,
                shutdown_grace_secs: 20,
                tls_cert_path: None,
                tls_key_path: None,
            },
            database: DatabaseSettings {
                url: None,
                sqlite_path: None,
                max_connections: 10,
                acquire_timeout_secs: 5,
                connect_wait_secs: 30,
                create_if_missing: false,
                migrate_on_start: false,
            },
            commands: CommandSettings {
                state_cache_bytes: commands::service::DEFAULT_STATE_CACHE_BYTES,
            },
            auth: AuthSettings {
                jwt_secret: None,
                jwt_public_key_path: None,
                leeway_secs: 30,
                issuer: None,
                audience: None,
                generate_dev_secret: false,
            },
            log: LogSettings {
                level: "info".into(),
                format: LogFormat::Json,
            },
            projections: ProjectionSettings {
                batch_size: 500,
                batch_bytes: projections::DEFAULT_BATCH_BYTES,
                poll_interval_ms: 500,
                audit_poll_interval_ms: 100,
                read_your_writes_timeout_ms: 2000,
                readiness_max_lag: 10_000,
                rebuild_memory_bytes: projections::models::ModelsRebuild::DEFAULT_MEMORY as u64,
                rebuild_batch_size: 5000,
            },
            nats: NatsSettings {
                url: None,
                stream: "FLOWABLE_EVENTS".into(),
                subject_prefix: "flowable.events".into(),
                max_age_secs: 7 * 24 * 3600,
                max_bytes: 1024 * 1024 * 1024,
                replicas: 1,
                duplicate_window_secs: 300,
                batch_size: 500,
                max_outstanding_acks: 256,
            },
            limits: crate::limits::LimitSettings::default(),
            data_dir: PathBuf::from("data"),
        }
    }

    /// Loads the settings for the profile named by `APP_PROFILE` from the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        let profile = match std::env::var("APP_PROFILE") {
            Ok(raw) => raw.parse()?,
            Err(_) => Profile::Dev,
        };
        Self::figment(profile)
            .extract::<Self>()
            .map_err(ConfigError::from)
            .and_then(Self::checked)
    }

    /// The layered sources, exposed so tests can add their own on top.
    pub fn figment(profile: Profile) -> Figment {
        let mut figment = Figment::from(Serialized::defaults(Self::defaults(profile)))
            .merge(Toml::string(profile.file()));
        if let Ok(path) = std::env::var("APP_CONFIG_FILE") {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment
            // Well-known names, as in the deployment document.
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL"])
                    .map(|_| "database.url".into()),
            )
            .merge(
                Env::raw()
                    .only(&["JWT_SECRET"])
                    .map(|_| "auth.jwt_secret".into()),
            )
            .merge(
                Env::raw()
                    .only(&["JWT_PUBLIC_KEY_PATH"])
                    .map(|_| "auth.jwt_public_key_path".into()),
            )
            .merge(
                Env::raw()
                    .only(&["SERVER_PORT"])
                    .map(|_| "server.port".into()),
            )
            .merge(
                Env::raw()
                    .only(&["HTTP_BODY_LIMIT_BYTES"])
                    .map(|_| "server.body_limit_bytes".into()),
            )
            .merge(Env::raw().only(&["DATA_DIR"]).map(|_| "data_dir".into()))
            .merge(Env::raw().only(&["NATS_URL"]).map(|_| "nats.url".into()))
            .merge(
                Env::raw()
                    .only(&["TLS_CERT_PATH"])
                    .map(|_| "server.tls_cert_path".into()),
            )
            .merge(
                Env::raw()
                    .only(&["TLS_KEY_PATH"])
                    .map(|_| "server.tls_key_path".into()),
            )
            // Anything else: APP_SECTION__KEY, e.g. APP_DATABASE__MAX_CONNECTIONS=30.
            .merge(
                Env::prefixed("APP_")
                    .ignore(&["PROFILE", "CONFIG_FILE"])
                    .split("__"),
            )
            .merge(Serialized::default("profile", profile))
    }

    /// Which storage backend these settings select (decided once, at start-up).
    pub fn backend(&self) -> Backend {
        match &self.database.url {
            Some(url) => Backend::Postgres(url.clone()),
            None => Backend::Sqlite(
                self.database
                    .sqlite_path
                    .clone()
                    .unwrap_or_else(|| self.data_dir.join("flowable-ui.db")),
            ),
        }
    }

    /// Cross-field rules a type cannot express.
    pub fn checked(self) -> Result<Self, ConfigError> {
        // The embedded database is for development and tests; staging and production run
        // on PostgreSQL (DESIGN §7).
        if self.database.url.is_none() && self.profile.is_production_like() {
            return Err(ConfigError::Missing {
                key: "DATABASE_URL",
            });
        }
        let has_key = self.auth.jwt_secret.is_some() || self.auth.jwt_public_key_path.is_some();
        if !has_key && (self.profile.is_production_like() || !self.auth.generate_dev_secret) {
            return Err(ConfigError::Missing { key: "JWT_SECRET" });
        }
        if let Some(secret) = &self.auth.jwt_secret {
            if secret.expose().len() < 32 && self.profile.is_production_like() {
                return Err(ConfigError::Invalid {
                    key: "JWT_SECRET",
                    reason: "must be at least 32 bytes in staging and prod".into(),
                });
            }
        }
        if self.server.tls_cert_path.is_some() != self.server.tls_key_path.is_some() {
            return Err(ConfigError::Invalid {
                key: "TLS_CERT_PATH",
                reason: "and TLS_KEY_PATH must be set together".into(),
            });
        }
        if self.server.body_limit_bytes == 0 {
            return Err(ConfigError::Invalid {
                key: "server.body_limit_bytes",
                reason: "must be greater than 0".into(),
            });
        }
        Ok(self)
    }
}

/// The storage backend (DESIGN §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL at this URL, with NATS when `NATS_URL` is set.
    Postgres(Secret),
    /// The embedded SQLite file at this path, with the in-process event bus.
    Sqlite(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {key} is required")]
    Missing { key: &'static str },
    #[error("configuration: {key} {reason}")]
    Invalid { key: &'static str, reason: String },
    #[error("configuration: {0}")]
    Load(Box<figment::Error>),
}

impl From<figment::Error> for ConfigError {
    fn from(error: figment::Error) -> Self {
        Self::Load(Box::new(error))
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return its large error type
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn dev_defaults_need_nothing_from_the_environment() {
        Jail::expect_with(|_| {
            let settings = Settings::load().expect("dev loads");
            assert_eq!(settings.profile, Profile::Dev);
            assert!(settings.database.migrate_on_start);
            assert_eq!(
                settings.backend(),
                Backend::Sqlite(PathBuf::from("data/flowable-ui.db"))
            );
            Ok(())
        });
    }

    #[test]
    fn database_url_selects_postgres_and_data_dir_moves_the_file() {
        Jail::expect_with(|jail| {
            jail.set_env("DATA_DIR", "/var/lib/flowable-ui");
            let settings = Settings::load().expect("loads");
            assert_eq!(
                settings.backend(),
                Backend::Sqlite(PathBuf::from("/var/lib/flowable-ui/flowable-ui.db"))
            );
            jail.set_env("DATABASE_URL", "postgres://db/x");
            let settings = Settings::load().expect("loads");
            assert!(matches!(settings.backend(), Backend::Postgres(_)));
            assert_eq!(settings.server.port, 8080);
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_the_profile_file() {
        Jail::expect_with(|jail| {
            jail.set_env("SERVER_PORT", "9090");
            jail.set_env("APP_DATABASE__MAX_CONNECTIONS", "3");
            let settings = Settings::load().expect("loads");
            assert_eq!(settings.server.port, 9090);
            assert_eq!(settings.database.max_connections, 3);
            Ok(())
        });
    }

    #[test]
    fn prod_needs_database_url_and_secret() {
        Jail::expect_with(|jail| {
            jail.set_env("APP_PROFILE", "prod");
            let error = Settings::load().expect_err("incomplete");
            assert!(error.to_string().contains("DATABASE_URL"), "{error}");
            jail.set_env("DATABASE_URL", "postgres://db/x");
            let error = Settings::load().expect_err("incomplete");
            assert!(error.to_string().contains("JWT_SECRET"), "{error}");
            jail.set_env("JWT_SECRET", "s".repeat(32));
            let settings = Settings::load().expect("complete");
            assert!(!settings.database.migrate_on_start);
            Ok(())
        });
    }

    #[test]
    fn staging_rebuilds_within_its_pods_memory_and_prod_keeps_the_default() {
        Jail::expect_with(|jail| {
            jail.set_env("DATABASE_URL", "postgres://db/x");
            jail.set_env("JWT_SECRET", "s".repeat(32));
            jail.set_env("APP_PROFILE", "staging");
            let staging = Settings::load().expect("staging loads");
            // deploy/k8s/base gives the pods 512 MiB; a rebuild peaks at ≈ 1.8× its budget.
            assert_eq!(staging.projections.rebuild_memory_bytes, 128 * 1024 * 1024);
            jail.set_env("APP_PROFILE", "prod");
            let prod = Settings::load().expect("prod loads");
            assert_eq!(
                prod.projections.rebuild_memory_bytes,
                projections::models::ModelsRebuild::DEFAULT_MEMORY as u64
            );
            Ok(())
        });
    }

    #[test]
    fn a_bad_value_names_its_key() {
        Jail::expect_with(|jail| {
            jail.set_env("SERVER_PORT", "eighty");
            let error = Settings::load().expect_err("bad port");
            assert!(
                error.to_string().to_lowercase().contains("server.port"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "***");
    }
}
