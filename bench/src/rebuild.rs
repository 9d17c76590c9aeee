//! The rebuild scenario (`--scenarios rebuild`): seeds a realistic event log (creates,
//! metadata changes and rejected commands of several tenants and users, bulk-inserted copies
//! of events the server wrote), stops the server, and measures, `--rebuild-runs` times each:
//! the bare feed read from position 0 to the end (the projections crate's feed, in the
//! rebuild's batch size, no effects), then `flowable-ui projections rebuild process_models`
//! and `… rebuild audit_logs` run as a user would, against the bench database, timed until
//! the swap (the active generation changes) and until the command exits (the old generation
//! dropped, the tables analyzed). With `--rebuild-baseline-bin` each rebuild also runs with
//! that binary, alternately on the same data, for a before/after comparison in one run.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::db::{self, EventWriter, TemplateEvent, MODEL_TYPE};
use crate::report::{self, load_average};

/// The aggregate and event type of a rejected command's record.
const REJECTION_TYPE: &str = "CommandRejection";
/// Users per tenant in the seeded metadata.
const USERS: usize = 20;

/// What the seeding wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Seeded {
    pub events: u64,
    pub models: u64,
    pub metadata_changes: u64,
    pub rejections: u64,
    pub tenants: usize,
    pub insert_s: f64,
}

/// One measured pass.
#[derive(Debug, Clone, Serialize)]
pub struct Pass {
    /// `feed`, `process_models` or `audit_logs`.
    pub what: String,
    /// Which binary ran the rebuild (`current`, `baseline`); `bench` for the feed read.
    pub binary: String,
    pub run: usize,
    pub events: u64,
    /// Start → swap (rebuilds) or → last batch (feed).
    pub seconds: f64,
    pub events_per_s: f64,
    /// Start → the command exited (old generation dropped, `ANALYZE` done).
    pub total_seconds: f64,
    /// CPU of the rebuilding process (or of this tool for the feed read), seconds.
    pub client_cpu_s: f64,
    pub postgres_cpu_s: f64,
    /// Other processes on the machine, percent of one core.
    pub other_pct: f64,
    pub load_average_before: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RebuildReport {
    pub seeded: Seeded,
    pub batch: i64,
    pub passes: Vec<Pass>,
    /// Median events/s per (what, binary).
    pub medians: Vec<(String, String, f64)>,
}

impl RebuildReport {
    pub fn finish(&mut self) {
        let mut keys: Vec<(String, String)> = Vec::new();
        for pass in &self.passes {
            let key = (pass.what.clone(), pass.binary.clone());
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        self.medians = keys
            .into_iter()
            .map(|(what, binary)| {
                let mut rates: Vec<f64> = self
                    .passes
                    .iter()
                    .filter(|p| p.what == what && p.binary == binary)
                    .map(|p| p.events_per_s)
                    .collect();
                rates.sort_by(f64::total_cmp);
                let median = rates.get(rates.len() / 2).copied().unwrap_or(0.0);
                (what, binary, median)
            })
            .collect();
    }

    pub fn print(&self) {
        let s = &self.seeded;
        println!();
        println!(
            "rebuild: {} events seeded in {:.1} s ({} models, {} metadata changes, {} rejections, {} tenants); batch {}",
            s.events, s.insert_s, s.models, s.metadata_changes, s.rejections, s.tenants, self.batch
        );
        println!(
            "{:<16} {:<9} {:>3} {:>9} {:>8} {:>10} {:>8} {:>8} {:>8} {:>7}  load avg",
            "what",
            "binary",
            "run",
            "events",
            "s",
            "events/s",
            "total s",
            "cli cpu",
            "pg cpu",
            "other%"
        );
        for p in &self.passes {
            println!(
                "{:<16} {:<9} {:>3} {:>9} {:>8.2} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>7.0}  {}",
                p.what,
                p.binary,
                p.run,
                p.events,
                p.seconds,
                p.events_per_s,
                p.total_seconds,
                p.client_cpu_s,
                p.postgres_cpu_s,
                p.other_pct,
                p.load_average_before
            );
        }
        for (what, binary, median) in &self.medians {
            println!("  median {what} ({binary}): {median:.0} events/s");
        }
    }
}

/// The templates the seeding copies.
pub struct Templates {
    pub created: TemplateEvent,
    pub changed: TemplateEvent,
    pub rejected: TemplateEvent,
}

/// The first rejection record the server wrote.
pub async fn rejection_template(pool: &PgPool) -> anyhow::Result<TemplateEvent> {
    let row: Option<(String, String, Value, Value)> = sqlx::query_as(
        "SELECT event_type, event_version, payload, metadata FROM events \
         WHERE aggregate_type = $1 ORDER BY global_position LIMIT 1",
    )
    .bind(REJECTION_TYPE)
    .fetch_optional(pool)
    .await?;
    let (event_type, event_version, payload, metadata) =
        row.context("the server recorded no rejection for the refused command")?;
    Ok(TemplateEvent {
        event_type,
        event_version,
        payload,
        metadata,
    })
}

/// `template`'s metadata for another tenant, user and time.
fn metadata(template: &Value, tenant: &str, user: &str, n: u64) -> String {
    let mut meta = template.clone();
    if let Some(object) = meta.as_object_mut() {
        object.insert("tenant_id".into(), json!(tenant));
        object.insert("user_id".into(), json!(user));
        object.insert("correlation_id".into(), json!(format!("bench-{n}")));
        let time = chrono::DateTime::from_timestamp(1_780_000_000 + (n / 100) as i64, 0)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        object.insert("time".into(), json!(time));
    }
    meta.to_string()
}

/// Seeds `events` events: a quarter creates, 5 % rejections, the rest metadata changes, over
/// `tenants` tenants with [`USERS`] users each. Consecutive events belong to different
/// aggregates, so each is its own audit row even though a bulk statement is one transaction.
pub async fn seed(
    pool: &PgPool,
    templates: &Templates,
    events: u64,
    tenants: usize,
) -> anyhow::Result<Seeded> {
    let started = Instant::now();
    let tenants = tenants.max(1);
    let tenant_names: Vec<String> = (0..tenants).map(|t| format!("bench-t{t}")).collect();
    let models = (events / 4).max(1);
    let rejections = events / 20;
    let changes = events.saturating_sub(models + rejections);
    let mut writer = EventWriter::new(pool);
    let mut ids = Vec::with_capacity(models as usize);
    let mut n = 0u64;
    let mut rejected = 0u64;
    // A rejection after every 19 other events (5 %).
    async fn maybe_reject(
        writer: &mut EventWriter<'_>,
        templates: &Templates,
        tenant_names: &[String],
        n: &mut u64,
        rejected: &mut u64,
        budget: u64,
        resource: &str,
    ) -> anyhow::Result<()> {
        if *rejected >= budget || *n % 20 != 19 {
            return Ok(());
        }
        let tenant = &tenant_names[(*n as usize) % tenant_names.len()];
        let user = format!("user-{}", *n as usize % USERS);
        let mut payload = templates.rejected.payload.clone();
        if let Some(fields) = db::fields_mut(&mut payload) {
            fields.insert("tenantId".into(), json!(tenant));
            fields.insert("resourceId".into(), json!(resource));
        }
        let meta = metadata(&templates.rejected.metadata, tenant, &user, *n);
        writer
            .push_event(
                REJECTION_TYPE,
                Uuid::new_v4().to_string(),
                1,
                &templates.rejected,
                payload.to_string(),
                meta,
            )
            .await?;
        *n += 1;
        *rejected += 1;
        Ok(())
    }

    for i in 0..models {
        let tenant = &tenant_names[(i as usize) % tenants];
        let key = format!("r{i:08}");
        let parsed =
            domain::ModelKey::parse(&key).map_err(|e| anyhow::anyhow!("bad key {key}: {e}"))?;
        let id = domain::ModelId::for_key(&domain::TenantId::new(tenant.as_str()), &parsed)
            .as_uuid()
            .to_string();
        let payload = db::with_fields(
            &templates.created.payload,
            &[
                ("tenantId", json!(tenant)),
                ("key", json!(key)),
                ("name", json!(format!("Process {i}"))),
                ("category", json!(format!("cat-{:02}", i % 50))),
            ],
        )?;
        let user = format!("user-{}", (i as usize / tenants) % USERS);
        let meta = metadata(&templates.created.metadata, tenant, &user, n);
        writer
            .push_event(MODEL_TYPE, id.clone(), 1, &templates.created, payload, meta)
            .await?;
        n += 1;
        maybe_reject(
            &mut writer,
            templates,
            &tenant_names,
            &mut n,
            &mut rejected,
            rejections,
            &id,
        )
        .await?;
        ids.push(id);
    }
    let mut changed = 0u64;
    let mut sequence = 1i64;
    'rounds: loop {
        sequence += 1;
        for (i, id) in ids.iter().enumerate() {
            if changed >= changes {
                break 'rounds;
            }
            let tenant = &tenant_names[i % tenants];
            let payload = db::with_fields(
                &templates.changed.payload,
                &[
                    ("name", json!(format!("Process {i}"))),
                    ("description", json!(format!("edit {sequence}"))),
                ],
            )?;
            let user = format!("user-{}", (i + sequence as usize) % USERS);
            let meta = metadata(&templates.changed.metadata, tenant, &user, n);
            writer
                .push_event(
                    MODEL_TYPE,
                    id.clone(),
                    sequence,
                    &templates.changed,
                    payload,
                    meta,
                )
                .await?;
            n += 1;
            changed += 1;
            maybe_reject(
                &mut writer,
                templates,
                &tenant_names,
                &mut n,
                &mut rejected,
                rejections,
                id,
            )
            .await?;
        }
    }
    writer.flush().await?;
    Ok(Seeded {
        events: writer.written,
        models,
        metadata_changes: changed,
        rejections: rejected,
        tenants,
        insert_s: started.elapsed().as_secs_f64(),
    })
}

/// Reads the whole feed from position 0 in batches of `batch` on one connection, as a
/// rebuild reads it; the events read and the seconds.
pub async fn read_feed(database_url: &str, batch: i64) -> anyhow::Result<(u64, f64)> {
    let mut conn = PgConnection::connect(database_url).await?;
    let started = Instant::now();
    let mut after = projections::Position::START;
    let mut events = 0u64;
    loop {
        let read = projections::feed::read_batch(&mut conn, after, batch).await?;
        let Some(last) = read.last() else {
            break;
        };
        after = last.position();
        events += read.len() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    conn.close().await?;
    Ok((events, seconds))
}

/// The bare feed read, measured.
pub async fn measure_feed(database_url: &str, batch: i64, run: usize) -> anyhow::Result<Pass> {
    let load = load_average();
    // No server process here: the tool itself is the reader.
    let cpu_before = report::cpu_snapshot(0);
    let (events, seconds) = read_feed(database_url, batch).await?;
    let cpu = report::cpu_snapshot(0).split_since(&cpu_before);
    Ok(Pass {
        what: "feed".into(),
        binary: "bench".into(),
        run,
        events,
        seconds,
        events_per_s: events as f64 / seconds.max(1e-9),
        total_seconds: seconds,
        client_cpu_s: cpu.bench_tool_pct / 100.0 * seconds,
        postgres_cpu_s: cpu.postgres_ms / 1000.0,
        other_pct: cpu.other_pct,
        load_average_before: load,
    })
}

/// Runs `binary projections rebuild <family>` against the bench database; timed until the
/// active generation changes and until the process exits.
pub async fn measure_cli(
    binary: &Path,
    label: &str,
    database_url: &str,
    jwt_secret: &str,
    family: &str,
    events: u64,
    run: usize,
) -> anyhow::Result<Pass> {
    let mut watch = PgConnection::connect(database_url).await?;
    let active = || {
        sqlx::query_scalar::<_, i64>("SELECT active FROM projection_generations WHERE name = $1")
            .bind(family)
    };
    let before = active().fetch_one(&mut watch).await?;
    let load = load_average();
    let children_before = children_cpu();
    let cpu_before = report::cpu_snapshot(0);
    let started = Instant::now();
    let log_path = std::env::temp_dir().join(format!("fui-bench-rebuild-{}.log", Uuid::new_v4()));
    let log = std::fs::File::create(&log_path)?;
    let mut child = std::process::Command::new(binary)
        .args(["projections", "rebuild", family])
        .env_remove("APP_CONFIG_FILE")
        .env_remove("RUST_LOG")
        .env("APP_PROFILE", "test")
        .env("DATABASE_URL", database_url)
        .env("JWT_SECRET", jwt_secret)
        .env("APP_LOG__LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let mut swapped = None;
    let polled = async {
        loop {
            if let Some(status) = child.try_wait()? {
                return anyhow::Ok(status);
            }
            if swapped.is_none() && active().fetch_one(&mut watch).await? != before {
                swapped = Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    .await;
    let status = match polled {
        Ok(status) => status,
        Err(error) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(error);
        }
    };
    let total = started.elapsed();
    let cpu = report::cpu_snapshot(0).split_since(&cpu_before);
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    if !status.success() {
        bail!(
            "{} projections rebuild {family} failed ({status}): {output}",
            binary.display()
        );
    }
    let after = active().fetch_one(&mut watch).await?;
    watch.close().await?;
    if after == before {
        bail!("{family}: the rebuild exited without swapping generations");
    }
    // Exited before a poll saw the swap: the swap came at most at the exit.
    let seconds = swapped.unwrap_or(total).as_secs_f64();
    let client_cpu = children_cpu().saturating_sub(children_before).as_secs_f64();
    Ok(Pass {
        what: family.to_owned(),
        binary: label.to_owned(),
        run,
        events,
        seconds,
        events_per_s: events as f64 / seconds.max(1e-9),
        total_seconds: total.as_secs_f64(),
        client_cpu_s: client_cpu,
        postgres_cpu_s: cpu.postgres_ms / 1000.0,
        other_pct: (cpu.other_pct - 100.0 * client_cpu / total.as_secs_f64().max(1e-9)).max(0.0),
        load_average_before: load,
    })
}

/// CPU time of this tool's reaped children.
fn children_cpu() -> Duration {
    crate::server::proc_cpu(std::process::id()).map_or(Duration::ZERO, |c| c.children)
}

/// `VACUUM (ANALYZE)` of the read tables between passes, so every pass starts from the same
/// state (a swap leaves the old generation's rows dead).
pub async fn vacuum(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("VACUUM (ANALYZE) process_models, model_versions, audit_logs")
        .execute(pool)
        .await
        .context("VACUUM between rebuild passes")?;
    Ok(())
}
