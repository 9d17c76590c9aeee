//! The `flowable-ui` command line: serve (default), migrate, token, healthcheck.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::{authenticator, Application};
use crate::config::{Backend, Profile, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "flowable-ui",
    version,
    about = "Process-model management service"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print a signed development token (refused in staging and prod).
    Token {
        /// The user id (`sub`).
        #[arg(long, default_value = "dev")]
        sub: String,
        /// The tenant (`tenant_id`).
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Comma-separated privileges.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "access-modeler,access-admin"
        )]
        privileges: Vec<String>,
        /// Lifetime in hours.
        #[arg(long, default_value_t = 8)]
        ttl_hours: u64,
    },
    /// Inspect and rebuild read models.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Follow the event stream on NATS.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Check the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Exit 0 if the local server reports ready (for container health checks).
    Healthcheck {
        #[arg(long, env = "SERVER_PORT", default_value_t = 8080)]
        port: u16,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print events as they are relayed (needs NATS_URL).
    Tail {
        /// Only this tenant's events.
        #[arg(long)]
        tenant: Option<String>,
        /// Only events of this type (e.g. ModelPublished, CommandRejected).
        #[arg(long = "type")]
        event_type: Option<String>,
        /// `start` (all the stream holds), `now` (only new ones) or a global position to
        /// continue after.
        #[arg(long, default_value = "now")]
        from: String,
        /// A durable consumer that remembers where it stopped across runs.
        #[arg(long)]
        durable: Option<String>,
        /// `json` (one envelope per line) or `text`.
        #[arg(long, default_value = "text", value_parser = ["json", "text"])]
        format: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain; exit non-zero naming the first row that was edited, deleted or
    /// inserted out of chain.
    Verify {
        /// A generation other than the active one.
        #[arg(long)]
        generation: Option<i64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Each consumer's checkpoint, lag and generation.
    Status,
    /// Rebuild a read model from the whole event store into new tables and swap them in;
    /// the service keeps serving the old content until the swap.
    Rebuild {
        /// The read model (`process_models`, ...).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Rebuild every read model.
        #[arg(long)]
        all: bool,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve().await,
        Command::Migrate => migrate().await,
        Command::Token {
            sub,
            tenant,
            privileges,
            ttl_hours,
        } => token(&sub, &tenant, &privileges, ttl_hours),
        Command::Healthcheck { port } => healthcheck(port),
        Command::Projections { command } => projections(command).await,
        Command::Events {
            command:
                EventsCommand::Tail {
                    tenant,
                    event_type,
                    from,
                    durable,
                    format,
                },
        } => tail(tenant, event_type, &from, durable, &format).await,
        Command::Audit {
            command: AuditCommand::Verify { generation },
        } => audit_verify(generation).await,
    }
}

async fn serve() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    crate::telemetry::init(&settings.log);
    tracing::info!(profile = settings.profile.as_str(), "starting flowable-ui");
    let app = Application::build(&settings).await?;
    let port = app.port();
    tracing::info!(port, "ready");
    if settings.profile == Profile::Dev {
        match settings.backend() {
            Backend::Sqlite(path) => println!(
                "data: {} (embedded SQLite; set DATABASE_URL for PostgreSQL)",
                std::path::absolute(&path).unwrap_or(path).display()
            ),
            Backend::Postgres(_) => println!("data: PostgreSQL (DATABASE_URL)"),
        }
        let token = app.authenticator().issue(
            "dev",
            "default",
            &["access-modeler".into(), "access-admin".into()],
            Duration::from_secs(8 * 3600),
        );
        if let Ok(token) = token {
            println!("flowable-ui (dev) listening on http://localhost:{port}");
            println!("development token (user dev, tenant default, 8 h):\n{token}");
            println!(
                "try: curl -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \
                 -d '{{\"key\":\"order\",\"name\":\"Order\"}}' http://localhost:{port}/api/v1/process-models"
            );
        }
    }
    app.run_until_stopped().await
}

/// The configured database for one-shot commands.
enum Target {
    /// PostgreSQL, connected (no migrations, no creation).
    Postgres(sqlx::PgPool),
    /// The embedded file, opened (and migrated) by this process: a running server holds
    /// its lock, so this fails with a clear message while one runs.
    Sqlite(commands::sqlite::EmbeddedStore),
}

async fn connect(settings: &Settings) -> anyhow::Result<Target> {
    match settings.backend() {
        Backend::Postgres(url) => commands::db::connect_with_retry(
            url.expose(),
            &commands::db::PoolSettings::default(),
            Duration::from_secs(settings.database.connect_wait_secs),
        )
        .await
        .context("could not connect to the database")
        .map(Target::Postgres),
        Backend::Sqlite(path) => crate::backend::sqlite::open(settings, &path)
            .await
            .map_err(|error| {
                error.context(
                    "while a server runs on this file, use its admin API \
                     (/api/v1/admin/projections) instead",
                )
            })
            .map(Target::Sqlite),
    }
}

async fn tail(
    tenant: Option<String>,
    event_type: Option<String>,
    from: &str,
    durable: Option<String>,
    format: &str,
) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    use projections::relay::{subscribe_durable, subscribe_live, StartFrom};

    let settings = Settings::load()?;
    crate::telemetry::init(&settings.log);
    let relay = crate::relay::Relay::from_settings(&settings.nats).context(
        "`events tail` needs NATS: set NATS_URL (and DATABASE_URL). Without NATS events are \
         not relayed anywhere; the embedded backend's in-process bus is served only by \
         GET /api/v1/events/stream",
    )?;
    let start = match from {
        "start" => StartFrom::Beginning,
        "now" => StartFrom::New,
        position => StartFrom::AfterPosition(position.parse().with_context(|| {
            format!("--from takes start, now or a global position, not '{position}'")
        })?),
    };
    let client = projections::relay::connect(&relay.settings, "flowable-ui events tail")
        .await
        .context("cannot connect to NATS")?;
    let js = relay.settings.jetstream(client);
    let mut events = match &durable {
        Some(name) => {
            subscribe_durable(&js, &relay.settings, tenant.as_deref(), name, start).await?
        }
        None => subscribe_live(&js, &relay.settings, tenant.as_deref(), start).await?,
    };
    while let Some(event) = events.next().await {
        let envelope = event?;
        if event_type
            .as_ref()
            .is_some_and(|t| t != &envelope.event_type)
        {
            continue;
        }
        if format == "json" {
            println!("{}", serde_json::to_string(&envelope)?);
        } else {
            println!(
                "{:>10}  {}  {:<8}  {:<18} {}/{} #{}  {}",
                envelope.global_position,
                envelope.recorded_at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                envelope.tenant_id.as_deref().unwrap_or("-"),
                envelope.event_type,
                envelope.aggregate_type,
                envelope.aggregate_id,
                envelope.sequence,
                envelope.correlation_id.as_deref().unwrap_or("-"),
            );
        }
    }
    Ok(())
}

async fn audit_verify(generation: Option<i64>) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    crate::telemetry::init(&settings.log);
    let report = match connect(&settings).await? {
        Target::Postgres(pool) => projections::audit::verify(&pool, generation).await?,
        Target::Sqlite(store) => {
            if generation.is_some() {
                anyhow::bail!("--generation: the embedded database keeps one generation");
            }
            projections::sqlite::audit::verify(store.pool()).await?
        }
    };
    match &report.first_problem {
        None => {
            println!(
                "audit chain intact: {} rows checked (generation {})",
                report.rows_checked, report.generation
            );
            Ok(())
        }
        Some(problem) => anyhow::bail!(
            "audit chain broken at seq {} (row id {}): {:?}: {} ({} rows checked before it)",
            problem.seq,
            problem
                .id
                .map_or_else(|| "-".to_owned(), |id| id.to_string()),
            problem.kind,
            problem.detail,
            report.rows_checked
        ),
    }
}

async fn projections(command: ProjectionsCommand) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    crate::telemetry::init(&settings.log);
    let target = connect(&settings).await?;
    match command {
        ProjectionsCommand::Status => {
            let statuses = match &target {
                Target::Postgres(pool) => crate::admin::status(pool, &[], None).await?,
                Target::Sqlite(store) => {
                    let read = crate::backend::sqlite::projections(&settings, store).await?;
                    crate::backend::sqlite::statuses(&read, None).await?
                }
            };
            println!(
                "{:<28} {:>22} {:>10} {:>10}",
                "NAME", "CHECKPOINT (tx/pos)", "LAG", "GENERATION"
            );
            for s in statuses {
                let checkpoint = s.checkpoint.map_or_else(
                    || "-".to_owned(),
                    |p| format!("{}/{}", p.tx_id, p.global_position),
                );
                let generation = s
                    .generation
                    .map_or_else(|| "-".to_owned(), |g| g.to_string());
                println!(
                    "{:<28} {:>22} {:>10} {:>10}",
                    s.name, checkpoint, s.lag, generation
                );
            }
            Ok(())
        }
        ProjectionsCommand::Rebuild { name, all } => {
            let known = crate::admin::families().to_vec();
            let names = match (name, all) {
                (_, true) => known,
                (Some(name), false) => {
                    vec![*known.iter().find(|k| **k == name).with_context(|| {
                        format!("no read model named '{name}' (known: {})", known.join(", "))
                    })?]
                }
                (None, false) => anyhow::bail!("name a read model or pass --all"),
            };
            for name in names {
                let bar = progress_bar(name);
                let tracker = bar.clone();
                let progress = move |p: projections::rebuild::Progress| {
                    tracker.set_length(p.total);
                    tracker.set_position(p.done);
                };
                let report = match &target {
                    Target::Postgres(pool) => {
                        let model = crate::admin::find(name, &settings.projections)
                            .context("unknown read model")?;
                        crate::admin::rebuild(pool, model.as_ref(), &settings.projections, progress)
                            .await?
                    }
                    Target::Sqlite(store) => {
                        let family = projections::sqlite::Family::from_name(name)
                            .context("unknown read model")?;
                        crate::backend::sqlite::projections(&settings, store)
                            .await?
                            .rebuild(family, progress)
                            .await?
                    }
                };
                bar.finish();
                println!(
                    "{}: {} events into generation {} in {:.1} s ({:.0} events/s)",
                    report.family,
                    report.events,
                    report.generation,
                    report.seconds,
                    report.events as f64 / report.seconds.max(1e-9)
                );
            }
            Ok(())
        }
    }
}

fn progress_bar(name: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix:>16} [{bar:40}] {pos}/{len} events {per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(name.to_owned());
    bar
}

async fn migrate() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    crate::telemetry::init(&settings.log);
    let status = match settings.backend() {
        Backend::Postgres(url) => {
            let url = url.expose();
            if settings.database.create_if_missing && !settings.profile.is_production_like() {
                commands::db::create_database_if_missing(url).await?;
            }
            let pool = commands::db::connect_with_retry(
                url,
                &commands::db::PoolSettings::default(),
                Duration::from_secs(settings.database.connect_wait_secs),
            )
            .await
            .context("could not connect to the database")?;
            commands::db::migrate(&pool)
                .await
                .context("migrations failed")?;
            commands::db::schema_status(&pool).await?
        }
        // Opening the embedded file migrates it.
        Backend::Sqlite(path) => {
            let store = crate::backend::sqlite::open(&settings, &path).await?;
            commands::sqlite::schema_status(store.pool()).await?
        }
    };
    println!("schema is current ({} pending)", status.pending.len());
    Ok(())
}

fn token(sub: &str, tenant: &str, privileges: &[String], ttl_hours: u64) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    if settings.profile.is_production_like() {
        anyhow::bail!(
            "`token` is for development; it refuses to run in the {} profile",
            settings.profile.as_str()
        );
    }
    let token = authenticator(&settings)?.issue(
        sub,
        tenant,
        privileges,
        Duration::from_secs(ttl_hours * 3600),
    )?;
    println!("{token}");
    Ok(())
}

fn healthcheck(port: u16) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).context("server not reachable")?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    stream.write_all(b"GET /actuator/health/readiness HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    if head.starts_with(b"HTTP/1.0 200") || head.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        anyhow::bail!("not ready: {}", String::from_utf8_lossy(&head))
    }
}
