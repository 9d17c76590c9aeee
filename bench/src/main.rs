//! `flowable-ui-bench`: the load benchmark of the flowable-ui service.
//!
//! It creates a fresh database, starts the real server binary on it, seeds it (bulk-inserted
//! copies of events the server itself wrote; the server's projector builds the read tables),
//! drives the HTTP API with signed tokens at a given concurrency, runs `pgbench` doing the bare
//! database work of one command for the same time and concurrency, and reports throughput,
//! latency, errors, the service/pgbench ratio, the server's memory and start-up time as a
//! table and a JSON file. It stops the server and drops the database at the end, on error and
//! on Ctrl-C. All HTTP traffic goes to 127.0.0.1.

mod db;
mod fanout;
mod histogram;
mod load;
mod pgbench;
mod rebuild;
mod report;
mod rounds;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::db::{EventWriter, TemplateEvent};
use crate::load::{Ctx, Mix, Op, Pace, CATEGORIES};
use crate::report::{Report, ScenarioReport};
use crate::server::{Launch, Server};

const TENANT: &str = "bench";
/// How long to wait for PostgreSQL's statistics after a scenario.
const STATS_FLUSH: Duration = Duration::from_millis(10_500);
const ALL_SCENARIOS: &[&str] = &[
    "create",
    "get",
    "list",
    "update-if-match",
    "update",
    "publish",
    "history",
    "mixed",
    "get-rate",
    "list-rate",
    "pgbench",
    "ryw",
    "fanout",
    "rebuild",
];

#[derive(Debug, Parser)]
#[command(
    name = "flowable-ui-bench",
    about = "Load benchmark of the flowable-ui HTTP API, compared with pgbench doing a command's bare database work"
)]
pub struct Args {
    /// The server binary to start (build it with `cargo build --release -p api`).
    #[arg(long, default_value = "target/release/flowable-ui")]
    server_bin: PathBuf,
    /// PostgreSQL server URL, without a database name; a fresh database `fui_bench_<uuid>` is
    /// created on it and dropped at the end.
    #[arg(
        long,
        env = "BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    database_url: String,
    /// Concurrent closed-loop clients (and pgbench clients).
    #[arg(short, long, default_value_t = 16)]
    concurrency: usize,
    /// Measured seconds per scenario (pgbench runs as long).
    #[arg(short, long, default_value_t = 20)]
    duration: u64,
    /// Unmeasured warm-up seconds before each scenario (not for publish).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Requests per second of the fixed-rate scenarios (get-rate, list-rate).
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Workers of the fixed-rate scenarios (requests in flight at most).
    #[arg(long, default_value_t = 64)]
    rate_workers: usize,
    /// Process models seeded before the scenarios.
    #[arg(short, long, default_value_t = 100_000)]
    models: usize,
    /// Publishable models seeded for the publish scenario (0: estimated from the measured
    /// update rate so the scenario does not run out).
    #[arg(long, default_value_t = 0)]
    publishable: usize,
    /// Events of the short and of the long history in the history scenario.
    #[arg(long, value_delimiter = ',', default_value = "10,1000")]
    history_lengths: Vec<usize>,
    /// The history models' events after the create are editor saves of the `--fixture` JSON
    /// (`ModelJsonReplaced`, ≈ 16 KB each) instead of description edits: what an editor's
    /// autosave leaves, and what loading such a model costs.
    #[arg(long)]
    history_saves: bool,
    /// Aggregates per history length (default: 4 per client).
    #[arg(long)]
    history_aggregates: Option<usize>,
    /// Editor JSON of the publish scenario (a model that validates).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/flowable/test.simplemodel.json"))]
    fixture: PathBuf,
    /// Seeded models carry the `--fixture` editor JSON, as real models do, instead of an
    /// empty canvas (what the update scenarios edit).
    #[arg(long)]
    seed_editor_json: bool,
    /// Scenarios to run, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "create,get,list,update-if-match,update,publish,history,mixed,get-rate,list-rate,pgbench,ryw,fanout"
    )]
    scenarios: Vec<String>,
    /// NATS for the fan-out scenario (a stream and subject prefix of the run's own are
    /// created on it and deleted at the end).
    #[arg(long, env = "BENCH_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Commands per second of the fan-out scenario.
    #[arg(long, default_value_t = 200.0)]
    fanout_rate: f64,
    /// Events the rebuild scenario seeds (a quarter creates, 5 % rejections, the rest metadata
    /// changes).
    #[arg(long, default_value_t = 1_000_000)]
    rebuild_events: u64,
    /// Tenants of the rebuild scenario's events.
    #[arg(long, default_value_t = 4)]
    rebuild_tenants: usize,
    /// Passes of the rebuild scenario (feed read, models rebuild, audit rebuild each).
    #[arg(long, default_value_t = 3)]
    rebuild_runs: usize,
    /// Batch size of the rebuild scenario's bare feed read (the CLI's rebuild batch).
    #[arg(long, default_value_t = 5000)]
    rebuild_batch: i64,
    /// Read models the rebuild scenario rebuilds.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "process_models,audit_logs"
    )]
    rebuild_families: Vec<String>,
    /// Another server binary whose rebuilds run alternately with `--server-bin`'s on the same
    /// data (a before/after comparison in one run).
    #[arg(long)]
    rebuild_baseline_bin: Option<PathBuf>,
    /// Ack window of the fan-out scenario's raw JetStream baseline (the server's
    /// `nats.max_outstanding_acks`).
    #[arg(long, default_value_t = 256)]
    fanout_ack_window: usize,
    /// Batch size the raw baseline's expected-last-msg-id chain restarts at (the server's
    /// `nats.batch_size`).
    #[arg(long, default_value_t = 500)]
    fanout_relay_batch: u64,
    /// Extra server settings, e.g. `APP_DATABASE__MAX_CONNECTIONS=20` (repeatable).
    #[arg(long = "server-env", value_name = "KEY=VALUE")]
    server_env: Vec<String>,
    /// PostgreSQL settings for the bench database (`ALTER DATABASE … SET`, before the server
    /// connects), e.g. `plan_cache_mode=force_custom_plan` (repeatable).
    #[arg(long = "database-setting", value_name = "NAME=VALUE")]
    database_settings: Vec<String>,
    /// Rounds of the service/pgbench comparison: after the first, the repeatable command
    /// scenarios among those chosen (create, update-if-match, update) and pgbench run again,
    /// alternately, as often; each ratio reported is the median of its rounds.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=20))]
    ratio_rounds: u16,
    /// pgbench to use (default: PATH, then /usr/lib/postgresql/*/bin/pgbench).
    #[arg(long)]
    pgbench: Option<PathBuf>,
    /// Upper bound on requests per scenario.
    #[arg(long, default_value_t = 5_000_000)]
    max_requests: u64,
    /// Where the JSON report goes.
    #[arg(short, long, default_value = "target/bench/flowable-ui-bench.json")]
    output: PathBuf,
    /// Do not `VACUUM ANALYZE` after seeding (measure with the planner statistics PostgreSQL
    /// has before autovacuum first runs).
    #[arg(long)]
    no_vacuum: bool,
    /// Keep the database (and print its name) instead of dropping it.
    #[arg(long)]
    keep_database: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(unknown) = args
        .scenarios
        .iter()
        .find(|s| !ALL_SCENARIOS.contains(&s.as_str()))
    {
        eprintln!(
            "error: unknown scenario '{unknown}' (known: {})",
            ALL_SCENARIOS.join(", ")
        );
        return ExitCode::FAILURE;
    }
    let database = format!("fui_bench_{}", Uuid::new_v4().simple());
    let server_url = args.database_url.trim_end_matches('/').to_owned();
    let result = tokio::select! {
        result = run(&args, &server_url, &database) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    // The run (and with it the server process) is over here; now the database can go.
    if args.keep_database {
        eprintln!("kept database {database}");
    } else if let Err(error) = db::drop_database(&server_url, &database).await {
        eprintln!("warning: could not drop database {database}: {error:#}");
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Everything a run shares.
struct Bench<'a> {
    args: &'a Args,
    client: reqwest::Client,
    database_url: String,
    jwt_secret: String,
    work_dir: PathBuf,
    server: Server,
    /// The server pid the memory sampler watches, and the largest RSS it saw (KiB) since reset.
    sampled_pid: Arc<AtomicU32>,
    sampled_peak: Arc<AtomicU64>,
    ctx: Ctx,
    report: Report,
    created: TemplateEvent,
    changed: TemplateEvent,
    publishable_template: Option<TemplateEvent>,
    /// The editor JSON of the seeded models (`--seed-editor-json`), else the template's.
    seed_model_json: Option<Value>,
    /// A save of the fixture (`--history-saves`): the history models' later events.
    saved: Option<TemplateEvent>,
    starts: u32,
    /// Load runs so far (each gets its own seed).
    runs: u64,
}

async fn run(args: &Args, server_url: &str, database: &str) -> anyhow::Result<()> {
    if !args.server_bin.is_file() {
        bail!(
            "no server binary at {} (build it: cargo build --release -p api, or pass --server-bin)",
            args.server_bin.display()
        );
    }
    if args.concurrency == 0 || args.rate_workers == 0 || args.rate <= 0.0 {
        bail!("concurrency, rate and rate workers must be positive");
    }
    let wants = |s: &str| args.scenarios.iter().any(|x| x == s);
    let work_dir = std::env::temp_dir().join(database);
    std::fs::create_dir_all(&work_dir)?;
    let mut report = Report::new(args);
    eprintln!(
        "flowable-ui-bench: database {database}, concurrency {}, {} s per scenario, load average {}",
        args.concurrency,
        args.duration,
        report::load_average()
    );

    db::create_database(server_url, database, &args.database_settings).await?;
    let database_url = format!("{server_url}/{database}");
    let jwt_secret = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(30))
        .build()?;

    // Start-up on an empty database (the server migrates it): time to readiness, idle memory.
    let mut server = Server::start(&launch(args, &database_url, &jwt_secret, &work_dir, 1, &[]))?;
    let ready = server.wait_ready(&client, Duration::from_secs(60)).await?;
    report.startup.ready_fresh_ms = ms(ready);
    tokio::time::sleep(Duration::from_secs(1)).await;
    report.memory.idle_fresh = server.memory();
    eprintln!(
        "server pid {} ready in {:.0} ms (fresh database, migrations included), idle RSS {:.1} MiB",
        server.pid,
        ms(ready),
        report.memory.idle_fresh.rss_mib()
    );

    let bearer = format!("Bearer {}", token(&jwt_secret)?);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&database_url)
        .await?;

    // Templates: events the server itself writes, copied for seeding.
    let base = server.base();
    let fixture: Option<Value> = match std::fs::read(&args.fixture) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes).context("the fixture is not JSON")?),
        Err(_) => {
            eprintln!(
                "note: fixture {} not found; the publish scenario is skipped",
                args.fixture.display()
            );
            None
        }
    };
    let seed_id = post_json(
        &client,
        &bearer,
        &format!("{base}/api/v1/process-models"),
        &json!({"key": "tmplseed", "name": "Template", "category": "cat-00",
                "description": "A seeded process model"}),
    )
    .await?;
    let url = format!("{base}/api/v1/process-models/{seed_id}");
    send_json(
        client.patch(&url),
        &bearer,
        &url,
        &json!({"description": "edited"}),
    )
    .await?;
    let seed_events = db::template_events(&pool, &seed_id).await?;
    let (Some(created), Some(changed)) =
        (seed_events.first().cloned(), seed_events.get(1).cloned())
    else {
        bail!(
            "the template model has {} events, expected 2",
            seed_events.len()
        );
    };
    let publishable_template = match &fixture {
        Some(model) => {
            let id = post_json(
                &client,
                &bearer,
                &format!("{base}/api/v1/process-models"),
                &json!({"key": "tmplpub", "name": "Publishable", "modelJson": model}),
            )
            .await?;
            db::template_events(&pool, &id).await?.first().cloned()
        }
        None => None,
    };

    let saved = match (args.history_saves, &fixture) {
        (false, _) => None,
        (true, Some(model)) => {
            let url = format!("{base}/api/v1/process-models/{seed_id}/model");
            send_json(client.put(&url), &bearer, &url, model).await?;
            let events = db::template_events(&pool, &seed_id).await?;
            Some(
                events
                    .get(2)
                    .cloned()
                    .context("the template model has no save after its edit")?,
            )
        }
        (true, None) => bail!(
            "--history-saves needs the fixture {}",
            args.fixture.display()
        ),
    };
    let seed_model_json = match (args.seed_editor_json, &fixture) {
        (false, _) => None,
        (true, Some(model)) => Some(model.clone()),
        (true, None) => bail!(
            "--seed-editor-json needs the fixture {}",
            args.fixture.display()
        ),
    };
    let sampled_pid = Arc::new(AtomicU32::new(server.pid));
    let sampled_peak = Arc::new(AtomicU64::new(0));
    let sampler = tokio::spawn(sample_memory(sampled_pid.clone(), sampled_peak.clone()));

    let mut bench = Bench {
        args,
        ctx: Ctx {
            client: client.clone(),
            base,
            bearer: bearer.clone(),
            models: Arc::default(),
            revisions: Arc::default(),
            publishable: Arc::default(),
            short_history: Arc::default(),
            long_history: Arc::default(),
        },
        client,
        database_url,
        jwt_secret,
        work_dir,
        server,
        sampled_pid,
        sampled_peak,
        report,
        created,
        changed,
        publishable_template,
        seed_model_json,
        saved,
        starts: 1,
        runs: 0,
    };
    let result = bench.scenarios(&pool, &wants).await;
    sampler.abort();
    bench.server.stop();
    pool.close().await;
    bench.report.finish();
    bench.report.print();
    bench.report.write(&args.output)?;
    eprintln!("JSON report: {}", args.output.display());
    let _ = std::fs::remove_dir_all(&bench.work_dir);
    result
}

impl Bench<'_> {
    async fn scenarios(
        &mut self,
        pool: &sqlx::PgPool,
        wants: &dyn Fn(&str) -> bool,
    ) -> anyhow::Result<()> {
        let args = self.args;
        // The rebuild scenario seeds its own event log.
        if args.scenarios.iter().any(|s| s != "rebuild") {
            self.seed(pool, wants("history")).await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            self.report.memory.idle_seeded = self.server.memory();
            eprintln!(
                "idle RSS with {} models: {:.1} MiB",
                args.models,
                self.report.memory.idle_seeded.rss_mib()
            );
        }

        for op in [Op::Create, Op::Get, Op::List, Op::UpdateIfMatch, Op::Update] {
            if wants(op.label()) {
                self.measure(
                    pool,
                    op.label(),
                    Mix::Only(op),
                    Pace::Closed,
                    args.concurrency,
                    true,
                    "",
                )
                .await?;
            }
        }
        // Right after the command scenarios, so both see the same machine load.
        if wants("pgbench") {
            self.pgbench(pool).await?;
            if self.report.pgbench.is_some() {
                for round in 2..=usize::from(args.ratio_rounds) {
                    self.ratio_round(pool, wants, round).await?;
                }
            }
        }
        if wants("publish") {
            self.publish(pool).await?;
        }
        if wants("history") && !self.ctx.long_history.is_empty() {
            // What grows with the history is the load; a model found in the state cache is
            // not loaded at all, so the cache is off for these two (every command loads,
            // through the model's snapshot).
            self.restart(&[("APP_COMMANDS__STATE_CACHE_BYTES".to_owned(), "0".to_owned())])
                .await?;
            let lengths = &args.history_lengths;
            let events = if self.saved.is_some() {
                "events (editor saves)"
            } else {
                "events"
            };
            let note = |n: usize| {
                format!("models with {n} {events}, PATCH without If-Match, state cache off")
            };
            let short = note(lengths.first().copied().unwrap_or(10));
            let long = note(lengths.get(1).copied().unwrap_or(1000));
            self.measure(
                pool,
                "history-short",
                Mix::Only(Op::UpdateShortHistory),
                Pace::Closed,
                args.concurrency,
                true,
                &short,
            )
            .await?;
            self.measure(
                pool,
                "history-long",
                Mix::Only(Op::UpdateLongHistory),
                Pace::Closed,
                args.concurrency,
                true,
                &long,
            )
            .await?;
            self.restart(&[]).await?;
        }
        if wants("mixed") {
            self.measure(
                pool,
                "mixed",
                Mix::ReadMostly,
                Pace::Closed,
                args.concurrency,
                true,
                "60 % get, 20 % list, 15 % update, 5 % create",
            )
            .await?;
        }
        let fixed = Pace::Fixed { rate: args.rate };
        let rate_note = format!("open loop at {} req/s", args.rate);
        if wants("get-rate") {
            self.measure(
                pool,
                "get-rate",
                Mix::Only(Op::Get),
                fixed,
                args.rate_workers,
                true,
                &rate_note,
            )
            .await?;
        }
        if wants("list-rate") {
            self.measure(
                pool,
                "list-rate",
                Mix::Only(Op::List),
                fixed,
                args.rate_workers,
                true,
                &rate_note,
            )
            .await?;
        }
        if wants("ryw") {
            self.read_your_writes(pool).await?;
        }
        if wants("fanout") {
            self.fanout(pool).await?;
        }
        // Last: it stops the server.
        if wants("rebuild") {
            self.rebuild(pool).await?;
        }
        Ok(())
    }

    /// Feed read and rebuild rates over a seeded log of `--rebuild-events` events.
    async fn rebuild(&mut self, pool: &sqlx::PgPool) -> anyhow::Result<()> {
        let args = self.args;
        // A refused command (the key exists), so the server writes a rejection record to copy.
        let response = self
            .client
            .post(format!("{}/api/v1/process-models", self.ctx.base))
            .header("Authorization", &self.ctx.bearer)
            .json(&json!({"key": "tmplseed", "name": "Template again"}))
            .send()
            .await?;
        if response.status().is_success() {
            bail!("the duplicate create was accepted; expected a conflict");
        }
        let templates = rebuild::Templates {
            created: self.created.clone(),
            changed: self.changed.clone(),
            rejected: rebuild::rejection_template(pool).await?,
        };
        // Only the rebuilds work on the database from here on.
        self.server.stop();
        eprintln!("rebuild: seeding {} events …", args.rebuild_events);
        let seeded =
            rebuild::seed(pool, &templates, args.rebuild_events, args.rebuild_tenants).await?;
        eprintln!(
            "rebuild: seeded {} events in {:.1} s",
            seeded.events, seeded.insert_s
        );
        // As autovacuum would soon: hint bits set and statistics fresh for every pass alike.
        sqlx::query("VACUUM (ANALYZE) events").execute(pool).await?;
        let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(pool)
            .await?;
        let events = events as u64;
        let mut binaries = vec![("current", args.server_bin.clone())];
        if let Some(baseline) = &args.rebuild_baseline_bin {
            binaries.insert(0, ("baseline", baseline.clone()));
        }
        let mut report = rebuild::RebuildReport {
            seeded,
            batch: args.rebuild_batch,
            ..Default::default()
        };
        for run in 1..=args.rebuild_runs.max(1) {
            let pass = rebuild::measure_feed(&self.database_url, args.rebuild_batch, run).await?;
            eprintln!(
                "rebuild run {run}: feed read {} events in {:.2} s ({:.0} events/s)",
                pass.events, pass.seconds, pass.events_per_s
            );
            report.passes.push(pass);
            for family in &args.rebuild_families {
                for (label, binary) in &binaries {
                    rebuild::vacuum(pool).await?;
                    let pass = rebuild::measure_cli(
                        binary,
                        label,
                        &self.database_url,
                        &self.jwt_secret,
                        family,
                        events,
                        run,
                    )
                    .await?;
                    eprintln!(
                        "rebuild run {run}: {family} ({label}) swapped after {:.2} s ({:.0} events/s), done after {:.2} s",
                        pass.seconds, pass.events_per_s, pass.total_seconds
                    );
                    report.passes.push(pass);
                }
            }
        }
        report.finish();
        self.report.rebuild = Some(report);
        Ok(())
    }

    /// Relay catch-up over the seeded backlog, then command → NATS / SSE latency.
    async fn fanout(&mut self, pool: &sqlx::PgPool) -> anyhow::Result<()> {
        let args = self.args;
        let backlog: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(pool)
            .await?;
        let (env, prefix) = fanout::server_env(&args.nats_url);
        let stream = env
            .iter()
            .find(|(k, _)| k == "APP_NATS__STREAM")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let load_average_before = report::load_average();
        // The ceiling, side by side: a bare JetStream publisher with the relay's stream
        // settings, headers, body size and ack window, as many messages as the backlog.
        let body = fanout::sample_body(pool).await?;
        let count = u64::try_from(backlog).unwrap_or(0).max(1);
        let mut raw = Vec::new();
        for chain in [None, Some(args.fanout_relay_batch)] {
            let baseline =
                fanout::raw_jetstream(&args.nats_url, &body, count, args.fanout_ack_window, chain)
                    .await?;
            eprintln!(
                "fan-out: raw JetStream publisher, {}: {:.0} events/s ({:.0} by the stream's clock)",
                baseline.variant, baseline.events_per_sec, baseline.stream_events_per_sec
            );
            raw.push(baseline);
        }
        self.restart(&env).await?;
        eprintln!("fan-out: the relay catches up {backlog} events");
        let seconds =
            fanout::wait_relay_caught_up(pool, Instant::now(), Duration::from_secs(900)).await;
        let ingest = match seconds {
            Ok(_) => {
                let client = async_nats::connect(&args.nats_url).await?;
                let js = async_nats::jetstream::new(client);
                Some(fanout::stream_ingest(&js, &stream).await?)
            }
            Err(_) => None,
        };
        let measured = match seconds {
            Ok(seconds) => {
                eprintln!(
                    "fan-out: creates at {}/s for {} s",
                    args.fanout_rate, args.duration
                );
                fanout::measure(
                    &self.client,
                    &self.ctx.base,
                    &self.ctx.bearer,
                    &args.nats_url,
                    &prefix,
                    args.fanout_rate,
                    Duration::from_secs(args.duration),
                )
                .await
                .map(|m| (seconds, m))
            }
            Err(error) => Err(error),
        };
        // The run's stream goes whatever happened.
        if let Ok(client) = async_nats::connect(&args.nats_url).await {
            let _ = async_nats::jetstream::new(client)
                .delete_stream(&stream)
                .await;
        }
        let (seconds, (commands, command_errors, nats, sse)) = measured?;
        let relay_stream_rate = ingest
            .map(|(messages, _, seconds)| messages.saturating_sub(1) as f64 / seconds.max(1e-9))
            .unwrap_or_default();
        let report = fanout::FanoutReport {
            backlog_events: backlog,
            relay_catch_up_seconds: seconds,
            relay_events_per_sec: backlog as f64 / seconds.max(1e-9),
            relay_stream_events_per_sec: relay_stream_rate,
            relay_stream_bytes_per_message: ingest
                .map(|(messages, bytes, _)| bytes as f64 / messages.max(1) as f64)
                .unwrap_or_default(),
            ratio_relay_to_raw: raw
                .first()
                .map(|raw| relay_stream_rate / raw.stream_events_per_sec.max(1e-9)),
            raw,
            load_average_before,
            commands,
            command_errors,
            rate: args.fanout_rate,
            nats,
            sse,
        };
        self.report.fanout = Some(report);
        Ok(())
    }

    /// Seeds the models (and the history aggregates) and waits for the projection.
    async fn seed(&mut self, pool: &sqlx::PgPool, history: bool) -> anyhow::Result<()> {
        let args = self.args;
        self.server.reset_peak();
        self.sampled_peak.store(0, Ordering::Relaxed);
        let started = Instant::now();
        let tenant = domain::TenantId::new(TENANT);
        let mut writer = EventWriter::new(pool);
        let mut models = Vec::with_capacity(args.models);
        for i in 0..args.models {
            let key = format!("m{i:07}");
            let id = model_id(&tenant, &key)?;
            let mut fields = vec![
                ("key", json!(key)),
                (
                    "name",
                    json!(format!("Process {} {i}", &id.simple().to_string()[..6])),
                ),
                ("category", json!(format!("cat-{:02}", i % CATEGORIES))),
            ];
            if let Some(model_json) = &self.seed_model_json {
                fields.push(("modelJson", model_json.clone()));
            }
            let payload = db::with_fields(&self.created.payload, &fields)?;
            writer
                .push(id.to_string(), 1, &self.created, payload)
                .await?;
            models.push(id);
        }
        if history {
            let aggregates = args.history_aggregates.unwrap_or(args.concurrency * 4);
            let short_len = args.history_lengths.first().copied().unwrap_or(10).max(1);
            let long_len = args.history_lengths.get(1).copied().unwrap_or(1000).max(1);
            let mut histories = [(short_len, Vec::new()), (long_len, Vec::new())];
            for (len, ids) in &mut histories {
                let len = *len;
                for j in 0..aggregates {
                    let key = format!("h{len}x{j}");
                    let id = model_id(&tenant, &key)?;
                    let payload = db::with_fields(
                        &self.created.payload,
                        &[
                            ("key", json!(key)),
                            ("name", json!(format!("History {len} {j}"))),
                        ],
                    )?;
                    writer
                        .push(id.to_string(), 1, &self.created, payload)
                        .await?;
                    for sequence in 2..=len {
                        if let Some(saved) = &self.saved {
                            writer
                                .push(
                                    id.to_string(),
                                    sequence as i64,
                                    saved,
                                    saved.payload.to_string(),
                                )
                                .await?;
                            continue;
                        }
                        let payload = db::with_fields(
                            &self.changed.payload,
                            &[("description", json!(format!("edit {sequence}")))],
                        )?;
                        writer
                            .push(id.to_string(), sequence as i64, &self.changed, payload)
                            .await?;
                    }
                    ids.push(id);
                }
            }
            let [(_, short), (_, long)] = histories;
            self.ctx.short_history = Arc::new(short);
            self.ctx.long_history = Arc::new(long);
        }
        writer.flush().await?;
        let inserted = started.elapsed();
        eprintln!(
            "seeded {} events ({} models) in {:.1} s; waiting for the projection …",
            writer.written,
            args.models,
            inserted.as_secs_f64()
        );
        let projected = db::wait_for_projection(pool, Duration::from_secs(3600)).await?;
        eprintln!("projection caught up in {:.1} s", projected.as_secs_f64());
        self.phase("seed models");
        let vacuum_s = if args.no_vacuum {
            None
        } else {
            Some(vacuum(pool).await?)
        };
        self.ctx.set_models(models);
        self.report.seeding = report::Seeding {
            method: "bulk INSERT … SELECT FROM UNNEST of copies of server-written events; the server's projector builds the read tables".into(),
            events: writer.written,
            models: args.models as u64,
            insert_s: inserted.as_secs_f64(),
            projection_s: projected.as_secs_f64(),
            vacuum_analyze_s: vacuum_s,
        };
        Ok(())
    }

    async fn publish(&mut self, pool: &sqlx::PgPool) -> anyhow::Result<()> {
        let Some(template) = self.publishable_template.clone() else {
            return Ok(());
        };
        let args = self.args;
        let count = if args.publishable > 0 {
            args.publishable
        } else {
            // Enough for the measured command rate, with a margin.
            let rate = self
                .report
                .scenarios
                .iter()
                .filter(|s| s.name.starts_with("update") || s.name == "create")
                .map(|s| s.total.throughput_per_s)
                .fold(0.0, f64::max);
            let rate = if rate > 0.0 { rate } else { 500.0 };
            ((rate * 1.5 * args.duration as f64) as usize).clamp(1000, 100_000)
        };
        self.server.reset_peak();
        self.sampled_peak.store(0, Ordering::Relaxed);
        let started = Instant::now();
        let tenant = domain::TenantId::new(TENANT);
        let mut writer = EventWriter::new(pool);
        let mut ids = Vec::with_capacity(count);
        for i in 0..count {
            let key = format!("p{i:07}");
            let id = model_id(&tenant, &key)?;
            let payload = db::with_fields(
                &template.payload,
                &[
                    ("key", json!(key)),
                    ("name", json!(format!("Publishable {i}"))),
                ],
            )?;
            writer.push(id.to_string(), 1, &template, payload).await?;
            ids.push(id);
        }
        writer.flush().await?;
        db::wait_for_projection(pool, Duration::from_secs(3600)).await?;
        eprintln!(
            "seeded {count} publishable models in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        self.phase("seed publishable");
        if !args.no_vacuum {
            vacuum(pool).await?;
        }
        // Catching up with thousands of large events leaves the server's heap big; restart so
        // the scenarios' memory figures are about request load (the catch-up peak is reported
        // as its own phase).
        self.restart(&[]).await?;
        self.ctx.publishable = Arc::new(ids);
        let note = format!(
            "publish of a fresh DRAFT with {} ({count} available)",
            args.fixture
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        self.measure(
            pool,
            "publish",
            Mix::Only(Op::Publish),
            Pace::Closed,
            args.concurrency,
            false,
            &note,
        )
        .await
    }

    async fn pgbench(&mut self, pool: &sqlx::PgPool) -> anyhow::Result<()> {
        let args = self.args;
        let Some(binary) = pgbench::find(args.pgbench.as_deref()) else {
            eprintln!("{}", pgbench::INSTALL_HINT);
            self.report.pgbench_unavailable = Some(pgbench::INSTALL_HINT.into());
            return Ok(());
        };
        pgbench::prepare(pool, args.concurrency, &self.created, &self.changed).await?;
        eprintln!(
            "pgbench: {} clients, {} s (load average {})",
            args.concurrency,
            args.duration,
            report::load_average()
        );
        let db_before = db::counters(pool).await?;
        let cpu_before = report::cpu_snapshot(self.server.pid);
        let result = self.run_pgbench(&binary).await?;
        let cpu = report::cpu_snapshot(self.server.pid).split_since(&cpu_before);
        eprintln!(
            "pgbench: {:.0} tps (machine CPU busy {:.0} %)",
            result.tps, cpu.machine_busy_pct
        );
        let transactions = result.latency.as_ref().map_or(0, |l| l.ok).max(1);
        self.report.pgbench_postgres_cpu_ms_per_tx = Some(cpu.postgres_ms / transactions as f64);
        tokio::time::sleep(STATS_FLUSH).await;
        self.report.pgbench_database_per_tx = Some(
            db::counters(pool)
                .await?
                .per_request_since(&db_before, transactions),
        );
        self.report.pgbench = Some(result);
        self.report.pgbench_cpu = Some(cpu);
        Ok(())
    }

    /// pgbench with the command script for `--duration` at `--concurrency`.
    async fn run_pgbench(
        &self,
        binary: &std::path::Path,
    ) -> anyhow::Result<pgbench::PgbenchResult> {
        let args = self.args;
        pgbench::run(
            binary,
            &self.database_url,
            args.concurrency,
            Duration::from_secs(args.duration),
            &self.work_dir,
        )
        .await
    }

    /// One more round of the comparison: the repeatable command scenarios chosen, then
    /// pgbench on a fresh `bench_events`, as in the first round (see [`rounds`]).
    async fn ratio_round(
        &mut self,
        pool: &sqlx::PgPool,
        wants: &dyn Fn(&str) -> bool,
        round: usize,
    ) -> anyhow::Result<()> {
        let args = self.args;
        for op in [Op::Create, Op::UpdateIfMatch, Op::Update] {
            if rounds::REPEATED.contains(&op.label()) && wants(op.label()) {
                let name = rounds::scenario_name(op.label(), round);
                let note = format!("ratio round {round}");
                self.measure(
                    pool,
                    &name,
                    Mix::Only(op),
                    Pace::Closed,
                    args.concurrency,
                    true,
                    &note,
                )
                .await?;
            }
        }
        let Some(binary) = pgbench::find(args.pgbench.as_deref()) else {
            bail!("{}", pgbench::INSTALL_HINT);
        };
        pgbench::prepare(pool, args.concurrency, &self.created, &self.changed).await?;
        let result = self.run_pgbench(&binary).await?;
        eprintln!("pgbench (round {round}): {:.0} tps", result.tps);
        self.report.pgbench_rounds_tps.push(result.tps);
        Ok(())
    }

    /// Update latency with read-your-writes off (timeout 0) and on (the default), each on a
    /// freshly started server, back to back.
    async fn read_your_writes(&mut self, pool: &sqlx::PgPool) -> anyhow::Result<()> {
        let args = self.args;
        for (name, env) in [
            (
                "update-ryw-off",
                vec![(
                    "APP_PROJECTIONS__READ_YOUR_WRITES_TIMEOUT_MS".to_owned(),
                    "0".to_owned(),
                )],
            ),
            ("update-ryw-on", Vec::new()),
        ] {
            self.restart(&env).await?;
            let note = if env.is_empty() {
                "default read-your-writes wait"
            } else {
                "READ_YOUR_WRITES_TIMEOUT_MS=0"
            };
            self.measure(
                pool,
                name,
                Mix::Only(Op::Update),
                Pace::Closed,
                args.concurrency,
                true,
                note,
            )
            .await?;
            if env.is_empty() {
                self.report.read_your_writes_server_wait = self.server_wait().await;
            }
        }
        Ok(())
    }

    /// The server's histogram of the read-your-writes wait since it started (`None`, with a
    /// note on stderr, when it cannot be read, e.g. from an older build).
    async fn server_wait(&self) -> Option<report::ServerWait> {
        let text = self.scrape().await?;
        let wait = report::ServerWait::between(None, &text);
        if wait.is_none() {
            eprintln!(
                "note: no read_your_writes_wait_seconds observations at {}/actuator/prometheus",
                self.server.base(),
            );
        }
        wait
    }

    /// The server's `/actuator/prometheus` text (`None`, with a note on stderr, when it
    /// cannot be read).
    async fn scrape(&self) -> Option<String> {
        let url = format!("{}/actuator/prometheus", self.server.base());
        let scraped = async { self.client.get(&url).send().await?.text().await }.await;
        scraped
            .map_err(|error| eprintln!("note: cannot scrape {url}: {error}"))
            .ok()
    }

    /// The server's `command_state_cache_total` counters in a scraped exposition (`None` when
    /// it has none, e.g. an older build).
    fn state_cache(text: &str) -> Option<report::StateCacheUse> {
        let count = |result: &str| {
            let series = format!("command_state_cache_total{{result=\"{result}\"}}");
            histogram::sample(text, &series).map(|value| value as u64)
        };
        Some(report::StateCacheUse {
            hit: count("hit")?,
            miss: count("miss")?,
            stale: count("stale")?,
        })
    }

    /// The `process_models` projector's step counters in a scraped exposition (`None` when
    /// it has none: an older build, or the embedded backend).
    fn models_steps(text: &str) -> Option<report::ProjectorSteps> {
        let count = |metric: &str| {
            histogram::sample(text, &format!("{metric}{{projection=\"process_models\"}}"))
        };
        Some(report::ProjectorSteps {
            steps: count("projection_steps_total")?,
            events: count("projection_events_applied_total")?,
            seconds: count("projection_step_seconds_total")?,
        })
    }

    /// Stops the server and starts a new one on the same (now seeded) database.
    async fn restart(&mut self, env: &[(String, String)]) -> anyhow::Result<()> {
        self.server.stop();
        self.starts += 1;
        let server = Server::start(&launch(
            self.args,
            &self.database_url,
            &self.jwt_secret,
            &self.work_dir,
            self.starts,
            env,
        ))?;
        self.server = server;
        let ready = self
            .server
            .wait_ready(&self.client, Duration::from_secs(60))
            .await?;
        self.report.startup.ready_warm_ms.push(ms(ready));
        eprintln!(
            "server restarted (pid {}) ready in {:.0} ms",
            self.server.pid,
            ms(ready)
        );
        self.sampled_pid.store(self.server.pid, Ordering::Relaxed);
        self.ctx.base = self.server.base();
        Ok(())
    }

    /// Records the server's peak memory since the last reset, for a phase that is not a
    /// scenario.
    fn phase(&mut self, name: &str) {
        let memory = self.server.memory();
        let peak_kib = memory
            .hwm_kib
            .max(self.sampled_peak.load(Ordering::Relaxed));
        eprintln!(
            "  {name}: server peak RSS {:.1} MiB, now {:.1} MiB",
            peak_kib as f64 / 1024.0,
            memory.rss_mib()
        );
        self.report.memory.phases.push(report::Phase {
            phase: name.to_owned(),
            peak_rss_mib: peak_kib as f64 / 1024.0,
            rss_after_mib: memory.rss_mib(),
        });
    }

    /// A fresh seed for each load run, different on every invocation of the tool.
    fn next_seed(&mut self) -> u64 {
        self.runs += 1;
        (Uuid::new_v4().as_u64_pair().0 & 0xffff_ffff_0000_0000) | self.runs
    }

    /// Runs one scenario (after an unmeasured warm-up) and records it.
    #[allow(clippy::too_many_arguments)]
    async fn measure(
        &mut self,
        pool: &sqlx::PgPool,
        name: &str,
        mix: Mix,
        pace: Pace,
        workers: usize,
        warm_up: bool,
        note: &str,
    ) -> anyhow::Result<()> {
        let args = self.args;
        // Start from a quiet state: the projection has caught up with earlier scenarios.
        db::wait_for_projection(pool, Duration::from_secs(600)).await?;
        let ctx = Arc::new(self.ctx.clone());
        if warm_up && args.warmup > 0 {
            load::run(
                ctx.clone(),
                mix,
                pace,
                workers,
                Duration::from_secs(args.warmup),
                args.max_requests,
                self.next_seed(),
            )
            .await;
            db::wait_for_projection(pool, Duration::from_secs(600)).await?;
        }
        let load_average = report::load_average();
        let db_before = db::counters(pool).await?;
        let scraped_before = self.scrape().await;
        let cpu_before = report::cpu_snapshot(self.server.pid);
        self.sampled_peak.store(0, Ordering::Relaxed);
        self.server.reset_peak();
        let collected = load::run(
            ctx,
            mix,
            pace,
            workers,
            Duration::from_secs(args.duration),
            args.max_requests,
            self.next_seed(),
        )
        .await;
        let cpu = report::cpu_snapshot(self.server.pid).split_since(&cpu_before);
        let scraped_after = self.scrape().await;
        // Let the backends flush their statistics: a busy backend may postpone it, and an idle
        // one flushes after 10 s (PGSTAT_IDLE_INTERVAL).
        tokio::time::sleep(STATS_FLUSH).await;
        let db_after = db::counters(pool).await?;
        let memory = self.server.memory();
        let peak_kib = self
            .sampled_peak
            .load(Ordering::Relaxed)
            .max(memory.hwm_kib)
            .max(memory.rss_kib);
        let mut scenario = ScenarioReport::new(name, workers, pace, &collected, note);
        let requests = scenario.total.requests.max(1) as f64;
        scenario.server_cpu_ms_per_request = cpu.server_ms / requests;
        scenario.postgres_cpu_ms_per_request = cpu.postgres_ms / requests;
        scenario.cpu = cpu;
        scenario.database_per_request =
            db_after.per_request_since(&db_before, scenario.total.requests);
        scenario.server_peak_rss_mib = peak_kib as f64 / 1024.0;
        scenario.load_average_before = load_average;
        if let (Some(before), Some(after)) = (&scraped_before, &scraped_after) {
            scenario.state_cache = Self::state_cache(before)
                .zip(Self::state_cache(after))
                .map(|(before, after)| after.since(&before))
                .filter(|used| used.hit + used.miss + used.stale > 0);
            scenario.read_your_writes_wait = report::ServerWait::between(Some(before), after);
            scenario.models_steps = Self::models_steps(before)
                .zip(Self::models_steps(after))
                .map(|(before, after)| after.since(&before));
        }
        eprintln!("{}", scenario.one_line());
        self.report.memory.phases.push(report::Phase {
            phase: name.to_owned(),
            peak_rss_mib: scenario.server_peak_rss_mib,
            rss_after_mib: memory.rss_mib(),
        });
        self.report.memory.peak_under_load_mib = self
            .report
            .memory
            .peak_under_load_mib
            .max(scenario.server_peak_rss_mib);
        self.report.scenarios.push(scenario);
        Ok(())
    }
}

fn launch<'a>(
    args: &'a Args,
    database_url: &'a str,
    jwt_secret: &'a str,
    work_dir: &std::path::Path,
    n: u32,
    extra: &[(String, String)],
) -> Launch<'a> {
    let mut env: Vec<(String, String)> = args
        .server_env
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    env.extend(extra.iter().cloned());
    Launch {
        binary: &args.server_bin,
        database_url,
        jwt_secret,
        log: work_dir.join(format!("server-{n}.log")),
        env,
    }
}

/// `VACUUM ANALYZE` of the tables the seeding filled, as autovacuum would do within a minute or
/// so: without planner statistics PostgreSQL picks a bitmap scan of all of a tenant's rows for
/// GET by id (see docs/performance.md).
async fn vacuum(pool: &sqlx::PgPool) -> anyhow::Result<f64> {
    let started = Instant::now();
    sqlx::query("VACUUM (ANALYZE) events, process_models, model_versions")
        .execute(pool)
        .await
        .context("VACUUM ANALYZE after seeding")?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("VACUUM ANALYZE in {seconds:.1} s");
    Ok(seconds)
}

fn model_id(tenant: &domain::TenantId, key: &str) -> anyhow::Result<Uuid> {
    let key = domain::ModelKey::parse(key).map_err(|e| anyhow::anyhow!("bad key {key}: {e}"))?;
    Ok(domain::ModelId::for_key(tenant, &key).as_uuid())
}

/// An HS256 token for a modeler of the bench tenant, valid for a day.
fn token(secret: &str) -> anyhow::Result<String> {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "sub": "bench",
        "tenant_id": TENANT,
        "privileges": ["access-modeler"],
        "iat": now,
        "exp": now + 24 * 3600,
    });
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

async fn post_json(
    client: &reqwest::Client,
    bearer: &str,
    url: &str,
    body: &Value,
) -> anyhow::Result<String> {
    let response = client
        .post(url)
        .header("Authorization", bearer)
        .json(body)
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    if !status.is_success() {
        bail!("POST {url}: {status}: {body}");
    }
    body["id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no id in {body}"))
}

/// Sends `body` as JSON with `request` (a PUT or PATCH of `url`); an error unless 2xx.
async fn send_json(
    request: reqwest::RequestBuilder,
    bearer: &str,
    url: &str,
    body: &Value,
) -> anyhow::Result<()> {
    let response = request
        .header("Authorization", bearer)
        .json(body)
        .send()
        .await?;
    let status = response.status();
    if !status.is_success() {
        bail!("{url}: {status}: {}", response.text().await?);
    }
    Ok(())
}

/// Samples the server's RSS every 50 ms, keeping the largest value since the last reset.
async fn sample_memory(pid: Arc<AtomicU32>, peak: Arc<AtomicU64>) {
    loop {
        let rss = server::memory(pid.load(Ordering::Relaxed)).rss_kib;
        peak.fetch_max(rss, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
