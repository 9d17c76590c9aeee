//! The database baseline: `pgbench` running the bare database work of one command — load one
//! aggregate's events, append one event with the next sequence, in one transaction — against
//! a table shaped like `events` (same columns, defaults, identity, indexes and an
//! append-notification trigger like the real one) in the bench database.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Serialize;
use sqlx::PgPool;

use crate::db::{TemplateEvent, MODEL_TYPE};
use crate::load::Summary;

/// Aggregates per pgbench client (each client touches only its own, as each bench worker
/// does, so there are no key conflicts).
pub const AGGREGATES_PER_CLIENT: usize = 100;

/// Where pgbench is: `--pgbench`, then `PATH`, then the Debian layout.
pub fn find(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return path.is_file().then(|| path.to_owned());
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("pgbench"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin/pgbench"))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        found.pop()
    })
}

pub const INSTALL_HINT: &str =
    "pgbench not found: install it with `apt-get install postgresql-client` \
     (Debian/Ubuntu; `postgresql` on Fedora/Arch) or pass --pgbench <path>";

/// The pgbench script: one command's bare database work.
pub const SCRIPT: &str = r"\set k random(1, 100)
BEGIN;
SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata
  FROM bench_events
 WHERE aggregate_type = 'ProcessModel' AND aggregate_id = 'pg-' || :client_id || '-' || :k
 ORDER BY sequence;
INSERT INTO bench_events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT 'ProcessModel', 'pg-' || :client_id || '-' || :k,
       (SELECT coalesce(max(sequence), 0) + 1 FROM bench_events
         WHERE aggregate_type = 'ProcessModel' AND aggregate_id = 'pg-' || :client_id || '-' || :k),
       t.event_type, t.event_version, t.payload, t.metadata
  FROM bench_template t;
END;
";

/// Creates `bench_events` (like `events`), the event to append, and `clients` × 100
/// aggregates of one event each (a `ModelCreated`, as the seeded models have).
pub async fn prepare(
    pool: &PgPool,
    clients: usize,
    created: &TemplateEvent,
    appended: &TemplateEvent,
) -> anyhow::Result<()> {
    for statement in [
        "DROP TABLE IF EXISTS bench_events, bench_template",
        "CREATE TABLE bench_events (LIKE events INCLUDING ALL)",
        "CREATE OR REPLACE FUNCTION bench_events_notify() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN PERFORM pg_notify('bench_events_appended', ''); RETURN NULL; END; $$",
        "CREATE TRIGGER bench_events_appended AFTER INSERT ON bench_events \
         FOR EACH STATEMENT EXECUTE FUNCTION bench_events_notify()",
        "CREATE TABLE bench_template (event_type text, event_version text, payload json, metadata jsonb)",
    ] {
        sqlx::query(statement).execute(pool).await?;
    }
    sqlx::query("INSERT INTO bench_template VALUES ($1, $2, $3, $4)")
        .bind(&appended.event_type)
        .bind(&appended.event_version)
        .bind(&appended.payload)
        .bind(&appended.metadata)
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO bench_events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT $1, 'pg-' || c || '-' || k, 1, $2, $3, $4, $5 \
           FROM generate_series(0, $6 - 1) c, generate_series(1, $7) k",
    )
    .bind(MODEL_TYPE)
    .bind(&created.event_type)
    .bind(&created.event_version)
    .bind(&created.payload)
    .bind(&created.metadata)
    .bind(clients as i32)
    .bind(AGGREGATES_PER_CLIENT as i32)
    .execute(pool)
    .await?;
    sqlx::query("ANALYZE bench_events").execute(pool).await?;
    Ok(())
}

/// What pgbench measured.
#[derive(Debug, Clone, Serialize)]
pub struct PgbenchResult {
    pub command: String,
    pub tps: f64,
    pub failed_transactions: u64,
    /// Per-transaction latency from pgbench's log (`-l`).
    pub latency: Option<Summary>,
}

/// Runs the script with `clients` clients for `duration`.
pub async fn run(
    pgbench: &Path,
    database_url: &str,
    clients: usize,
    duration: Duration,
    work_dir: &Path,
) -> anyhow::Result<PgbenchResult> {
    let script = work_dir.join("command.sql");
    std::fs::write(&script, SCRIPT)?;
    let log_dir = work_dir.join("pgbench-log");
    let _ = std::fs::remove_dir_all(&log_dir);
    std::fs::create_dir_all(&log_dir)?;
    let threads = clients.clamp(1, 2);
    let args: Vec<String> = vec![
        "-n".into(),
        "-M".into(),
        "prepared".into(),
        "-c".into(),
        clients.to_string(),
        "-j".into(),
        threads.to_string(),
        "-T".into(),
        duration.as_secs().max(1).to_string(),
        "-f".into(),
        script.display().to_string(),
        "-l".into(),
        format!("--log-prefix={}", log_dir.join("tx").display()),
        database_url.into(),
    ];
    let shown = format!(
        "{} {}",
        pgbench.display(),
        args.iter()
            .map(|a| if a == database_url {
                "<bench database URL>"
            } else {
                a
            })
            .collect::<Vec<_>>()
            .join(" ")
    );
    let binary = pgbench.to_owned();
    let output = tokio::task::spawn_blocking(move || Command::new(binary).args(&args).output())
        .await?
        .context("cannot run pgbench")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!("pgbench failed ({}):\n{stdout}\n{stderr}", output.status);
    }
    let tps = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .with_context(|| format!("no tps in pgbench output:\n{stdout}"))?;
    let failed_transactions = stdout
        .lines()
        .find_map(|l| l.strip_prefix("number of failed transactions: "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    let latency = log_latency(&log_dir, duration, failed_transactions);
    Ok(PgbenchResult {
        command: shown,
        tps,
        failed_transactions,
        latency,
    })
}

/// Per-transaction latencies from the `-l` files: `client tx time_us script epoch epoch_us`.
fn log_latency(dir: &Path, duration: Duration, failed: u64) -> Option<Summary> {
    let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).ok()?;
    for entry in std::fs::read_dir(dir).ok()?.filter_map(Result::ok) {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines() {
            if let Some(us) = line
                .split_whitespace()
                .nth(2)
                .and_then(|f| f.parse::<u64>().ok())
            {
                histogram.saturating_record(us.max(1));
            }
        }
    }
    if histogram.is_empty() {
        return None;
    }
    let ms = |us: u64| us as f64 / 1000.0;
    let q = |q: f64| ms(histogram.value_at_quantile(q));
    Some(Summary {
        requests: histogram.len() + failed,
        ok: histogram.len(),
        errors: failed,
        error_kinds: Default::default(),
        throughput_per_s: histogram.len() as f64 / duration.as_secs_f64().max(1e-9),
        mean_ms: histogram.mean() / 1000.0,
        p50_ms: q(0.5),
        p90_ms: q(0.9),
        p99_ms: q(0.99),
        p999_ms: q(0.999),
        max_ms: ms(histogram.max()),
        scheduled_p99_ms: None,
        scheduled_max_ms: None,
    })
}
