//! The `flowable-ui` command line: serve (default), migrate, token, healthcheck.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::{authenticator, Application};
use crate::config::{Profile, Settings};

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
    /// Exit 0 if the local server reports ready (for container health checks).
    Healthcheck {
        #[arg(long, env = "SERVER_PORT", default_value_t = 8080)]
        port: u16,
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

async fn migrate() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    crate::telemetry::init(&settings.log);
    let url = settings
        .database
        .url
        .as_ref()
        .context("DATABASE_URL is required")?
        .expose()
        .to_owned();
    if settings.database.create_if_missing && !settings.profile.is_production_like() {
        commands::db::create_database_if_missing(&url).await?;
    }
    let pool = commands::db::connect_with_retry(
        &url,
        &commands::db::PoolSettings::default(),
        Duration::from_secs(settings.database.connect_wait_secs),
    )
    .await
    .context("could not connect to the database")?;
    commands::db::migrate(&pool)
        .await
        .context("migrations failed")?;
    let status = commands::db::schema_status(&pool).await?;
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
