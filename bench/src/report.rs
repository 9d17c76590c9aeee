//! The report: per-scenario figures, the service/pgbench ratios, memory and start-up, the
//! targets, as a terminal table and a JSON file.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::load::{Collected, Pace, Summary};
use crate::pgbench::PgbenchResult;
use crate::server::Memory;
use crate::Args;

#[derive(Debug, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub date: String,
    pub machine: Machine,
    pub settings: Settings,
    pub startup: Startup,
    pub memory: MemoryReport,
    pub seeding: Seeding,
    pub scenarios: Vec<ScenarioReport>,
    pub pgbench: Option<PgbenchResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pgbench_unavailable: Option<String>,
    pub pgbench_cpu: Option<CpuSplit>,
    /// PostgreSQL CPU per pgbench transaction.
    pub pgbench_postgres_cpu_ms_per_tx: Option<f64>,
    pub pgbench_database_per_tx: Option<crate::db::DbPerRequest>,
    /// pgbench's tps in the extra ratio rounds (rounds 2, 3, …; round 1 is `pgbench`).
    pub pgbench_rounds_tps: Vec<f64>,
    /// Each round's command throughputs divided by that round's pgbench tps.
    pub ratio_rounds: Vec<crate::rounds::RatioRound>,
    /// Command throughput of each command scenario divided by pgbench's tps: the median over
    /// the ratio rounds (`--ratio-rounds`).
    pub ratio_service_to_pgbench: BTreeMap<String, f64>,
    pub history: Option<HistoryCost>,
    pub read_your_writes: Option<ReadYourWrites>,
    /// The server's own histogram of the read-your-writes wait during `update-ryw-on`.
    pub read_your_writes_server_wait: Option<ServerWait>,
    pub fanout: Option<crate::fanout::FanoutReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rebuild: Option<crate::rebuild::RebuildReport>,
    pub targets: Vec<Target>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_gib: f64,
    pub load_average_start: String,
    pub load_average_end: String,
    pub kernel: String,
}

#[derive(Debug, Serialize)]
pub struct Settings {
    pub server_binary: String,
    pub concurrency: usize,
    pub duration_s: u64,
    pub warmup_s: u64,
    pub rate: f64,
    pub rate_workers: usize,
    pub models: usize,
    pub vacuum_after_seeding: bool,
    pub history_lengths: Vec<usize>,
    pub server_env: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Startup {
    /// Process start → readiness 200 on an empty database (migrations included).
    pub ready_fresh_ms: f64,
    /// The same on the seeded database (later restarts).
    pub ready_warm_ms: Vec<f64>,
}

#[derive(Debug, Default, Serialize)]
pub struct MemoryReport {
    /// Idle after start on an empty database.
    pub idle_fresh: Memory,
    /// Idle after seeding (the projector has built the read tables).
    pub idle_seeded: Memory,
    /// Peak resident memory during the load scenarios (largest per-scenario peak), MiB.
    pub peak_under_load_mib: f64,
    /// Peak resident memory of each phase (seeding catch-up, each scenario), MiB.
    pub phases: Vec<Phase>,
}

#[derive(Debug, Default, Serialize)]
pub struct Phase {
    pub phase: String,
    pub peak_rss_mib: f64,
    pub rss_after_mib: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct Seeding {
    pub method: String,
    pub events: u64,
    pub models: u64,
    pub insert_s: f64,
    pub projection_s: f64,
    /// `None` with `--no-vacuum`.
    pub vacuum_analyze_s: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct ScenarioReport {
    pub name: String,
    pub note: String,
    pub workers: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_rate: Option<f64>,
    pub duration_s: f64,
    pub total: Summary,
    pub by_operation: BTreeMap<String, Summary>,
    pub exhausted_workers: usize,
    pub server_cpu_ms_per_request: f64,
    pub postgres_cpu_ms_per_request: f64,
    /// Where the CPU went during the scenario.
    pub cpu: CpuSplit,
    /// Database work per request (server requests plus its projector's work).
    pub database_per_request: crate::db::DbPerRequest,
    pub server_peak_rss_mib: f64,
    pub load_average_before: String,
    /// How the scenario's commands found their model's state (server counters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_cache: Option<StateCacheUse>,
    /// The server's read-your-writes wait of the scenario's commands (its histogram).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_your_writes_wait: Option<ServerWait>,
    /// The `process_models` projector's steps during the scenario (server counters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models_steps: Option<ProjectorSteps>,
}

/// A projector's steps that applied events: the server's `projection_steps_total`,
/// `projection_events_applied_total` and `projection_step_seconds_total`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ProjectorSteps {
    pub steps: f64,
    pub events: f64,
    pub seconds: f64,
}

impl ProjectorSteps {
    pub fn since(&self, before: &Self) -> Self {
        Self {
            steps: self.steps - before.steps,
            events: self.events - before.events,
            seconds: self.seconds - before.seconds,
        }
    }

    /// "N steps, E events/step, mean M ms" (empty without steps).
    fn summary(&self) -> String {
        if self.steps < 1.0 {
            return String::new();
        }
        format!(
            "  models projector {:.0} steps, {:.1} events/step, mean {:.2} ms",
            self.steps,
            self.events / self.steps,
            self.seconds * 1000.0 / self.steps
        )
    }
}

/// Commands by how they found the model's state: the server's `command_state_cache_total`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StateCacheUse {
    pub hit: u64,
    pub miss: u64,
    pub stale: u64,
}

impl StateCacheUse {
    pub fn since(&self, before: &Self) -> Self {
        Self {
            hit: self.hit.saturating_sub(before.hit),
            miss: self.miss.saturating_sub(before.miss),
            stale: self.stale.saturating_sub(before.stale),
        }
    }
}

impl ScenarioReport {
    pub fn new(name: &str, workers: usize, pace: Pace, collected: &Collected, note: &str) -> Self {
        let by_operation = if collected.by_op.len() > 1 {
            collected
                .by_op
                .iter()
                .map(|(op, s)| ((*op).to_owned(), s.summary(collected.elapsed)))
                .collect()
        } else {
            BTreeMap::new()
        };
        Self {
            name: name.to_owned(),
            note: note.to_owned(),
            workers,
            target_rate: match pace {
                Pace::Fixed { rate } => Some(rate),
                Pace::Closed => None,
            },
            duration_s: collected.elapsed.as_secs_f64(),
            total: collected.total().summary(collected.elapsed),
            by_operation,
            exhausted_workers: collected.exhausted_workers,
            server_cpu_ms_per_request: 0.0,
            postgres_cpu_ms_per_request: 0.0,
            cpu: CpuSplit::default(),
            database_per_request: Default::default(),
            server_peak_rss_mib: 0.0,
            load_average_before: String::new(),
            state_cache: None,
            read_your_writes_wait: None,
            models_steps: None,
        }
    }

    pub fn one_line(&self) -> String {
        let t = &self.total;
        format!(
            "{:<16} {:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms  errors {}{}",
            self.name,
            t.throughput_per_s,
            t.p50_ms,
            t.p99_ms,
            t.max_ms,
            t.errors,
            if self.exhausted_workers > 0 {
                format!(" ({} workers ran out of work)", self.exhausted_workers)
            } else {
                String::new()
            }
        ) + &self
            .state_cache
            .map(|c| {
                format!(
                    "  state cache hit/miss/stale {}/{}/{}",
                    c.hit, c.miss, c.stale
                )
            })
            .unwrap_or_default()
            + &self
                .read_your_writes_wait
                .as_ref()
                .map(|w| {
                    format!(
                        "  read-your-writes wait p50/p99 {:.2}/{:.2} ms",
                        w.p50_ms, w.p99_ms
                    )
                })
                .unwrap_or_default()
            + &self
                .models_steps
                .map(|steps| steps.summary())
                .unwrap_or_default()
    }
}

#[derive(Debug, Serialize)]
pub struct HistoryCost {
    pub short_events: usize,
    pub long_events: usize,
    pub short_p50_ms: f64,
    pub long_p50_ms: f64,
    pub short_mean_ms: f64,
    pub long_mean_ms: f64,
    /// long / short, by mean latency.
    pub ratio_mean: f64,
    pub ratio_p50: f64,
}

#[derive(Debug, Serialize)]
pub struct ServerWait {
    pub commands: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub timeouts: u64,
}

impl ServerWait {
    /// The `read_your_writes_wait_seconds` observations of the exposition `after`, less
    /// those already in `before` (an earlier scrape of the same server); `None` without any.
    pub fn between(before: Option<&str>, after: &str) -> Option<Self> {
        const NAME: &str = "read_your_writes_wait_seconds";
        const TIMEOUTS: &str = "read_your_writes_timeouts_total";
        let mut buckets = crate::histogram::buckets(after, NAME);
        let mut timeouts = crate::histogram::sample(after, TIMEOUTS).unwrap_or(0.0);
        if let Some(before) = before {
            buckets = crate::histogram::since(&buckets, &crate::histogram::buckets(before, NAME));
            timeouts -= crate::histogram::sample(before, TIMEOUTS).unwrap_or(0.0);
        }
        let commands = buckets.last()?.1;
        if commands == 0 {
            return None;
        }
        Some(Self {
            commands,
            p50_ms: crate::histogram::quantile(&buckets, 0.5)? * 1000.0,
            p99_ms: crate::histogram::quantile(&buckets, 0.99)? * 1000.0,
            timeouts: timeouts.max(0.0) as u64,
        })
    }
}

#[derive(Debug, Serialize)]
pub struct ReadYourWrites {
    pub off_p50_ms: f64,
    pub off_p99_ms: f64,
    pub on_p50_ms: f64,
    pub on_p99_ms: f64,
    /// on − off at p99.
    pub added_p99_ms: f64,
    pub added_p50_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct Target {
    pub name: String,
    pub target: String,
    pub measured: String,
    /// `None` when not measured in this run.
    pub met: Option<bool>,
}

impl Report {
    pub fn new(args: &Args) -> Self {
        Self {
            tool: "flowable-ui-bench",
            date: chrono::Utc::now().to_rfc3339(),
            machine: Machine {
                cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
                memory_gib: memory_gib(),
                load_average_start: load_average(),
                load_average_end: String::new(),
                kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
            },
            settings: Settings {
                server_binary: args.server_bin.display().to_string(),
                concurrency: args.concurrency,
                duration_s: args.duration,
                warmup_s: args.warmup,
                rate: args.rate,
                rate_workers: args.rate_workers,
                models: args.models,
                vacuum_after_seeding: !args.no_vacuum,
                history_lengths: args.history_lengths.clone(),
                server_env: args.server_env.clone(),
            },
            startup: Startup::default(),
            memory: MemoryReport::default(),
            seeding: Seeding::default(),
            scenarios: Vec::new(),
            pgbench: None,
            pgbench_unavailable: None,
            pgbench_cpu: None,
            pgbench_postgres_cpu_ms_per_tx: None,
            pgbench_database_per_tx: None,
            pgbench_rounds_tps: Vec::new(),
            ratio_rounds: Vec::new(),
            ratio_service_to_pgbench: BTreeMap::new(),
            history: None,
            read_your_writes: None,
            read_your_writes_server_wait: None,
            fanout: None,
            rebuild: None,
            targets: Vec::new(),
        }
    }

    fn scenario(&self, name: &str) -> Option<&ScenarioReport> {
        self.scenarios.iter().find(|s| s.name == name)
    }

    /// Derived figures and the targets.
    pub fn finish(&mut self) {
        self.machine.load_average_end = load_average();
        if let Some(pg) = &self.pgbench {
            let tps: Vec<f64> = std::iter::once(pg.tps)
                .chain(self.pgbench_rounds_tps.iter().copied())
                .collect();
            self.ratio_rounds = crate::rounds::ratio_rounds(&tps, |name, round| {
                self.scenario(&crate::rounds::scenario_name(name, round))
                    .map(|s| s.total.throughput_per_s)
            });
            self.ratio_service_to_pgbench = crate::rounds::median_ratios(&self.ratio_rounds);
        }
        if let (Some(short), Some(long)) = (
            self.scenario("history-short"),
            self.scenario("history-long"),
        ) {
            self.history = Some(HistoryCost {
                short_events: self.settings.history_lengths.first().copied().unwrap_or(10),
                long_events: self
                    .settings
                    .history_lengths
                    .get(1)
                    .copied()
                    .unwrap_or(1000),
                short_p50_ms: short.total.p50_ms,
                long_p50_ms: long.total.p50_ms,
                short_mean_ms: short.total.mean_ms,
                long_mean_ms: long.total.mean_ms,
                ratio_mean: long.total.mean_ms / short.total.mean_ms.max(1e-9),
                ratio_p50: long.total.p50_ms / short.total.p50_ms.max(1e-9),
            });
        }
        if let (Some(off), Some(on)) = (
            self.scenario("update-ryw-off"),
            self.scenario("update-ryw-on"),
        ) {
            self.read_your_writes = Some(ReadYourWrites {
                off_p50_ms: off.total.p50_ms,
                off_p99_ms: off.total.p99_ms,
                on_p50_ms: on.total.p50_ms,
                on_p99_ms: on.total.p99_ms,
                added_p99_ms: on.total.p99_ms - off.total.p99_ms,
                added_p50_ms: on.total.p50_ms - off.total.p50_ms,
            });
        }
        self.targets = self.evaluate();
    }

    fn evaluate(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        let mut add = |name: &str, target: &str, measured: Option<(String, bool)>| {
            targets.push(Target {
                name: name.to_owned(),
                target: target.to_owned(),
                measured: measured
                    .as_ref()
                    .map_or_else(|| "not measured".to_owned(), |(m, _)| m.clone()),
                met: measured.map(|(_, met)| met),
            });
        };
        let c = self.settings.concurrency;
        for name in ["update", "update-if-match", "create", "publish"] {
            add(
                &format!("{name} rate / pgbench rate (c={c})"),
                "≥ 0.60",
                self.ratio_service_to_pgbench
                    .get(name)
                    .map(|r| (format!("{r:.2}"), *r >= 0.6)),
            );
        }
        let rate = self.settings.rate;
        let fixed = |name: &str, limit: f64| {
            self.scenario(name).map(|s| {
                let achieved = s.total.throughput_per_s;
                (
                    format!(
                        "p99 {:.2} ms at {:.0} req/s (from schedule: {:.2} ms)",
                        s.total.p99_ms,
                        achieved,
                        s.total.scheduled_p99_ms.unwrap_or(f64::NAN)
                    ),
                    s.total.p99_ms < limit && achieved >= 0.95 * rate && s.total.errors == 0,
                )
            })
        };
        add(
            &format!(
                "GET by id p99 at {rate:.0} req/s, {} models",
                self.settings.models
            ),
            "< 5 ms",
            fixed("get-rate", 5.0),
        );
        add(
            &format!(
                "list p99 at {rate:.0} req/s, {} models",
                self.settings.models
            ),
            "< 20 ms",
            fixed("list-rate", 20.0),
        );
        add(
            "history cost: long / short (mean latency)",
            "≤ 2.0",
            self.history.as_ref().map(|h| {
                (
                    format!(
                        "{:.2} ({} events {:.2} ms vs {} events {:.2} ms)",
                        h.ratio_mean,
                        h.long_events,
                        h.long_mean_ms,
                        h.short_events,
                        h.short_mean_ms
                    ),
                    h.ratio_mean <= 2.0,
                )
            }),
        );
        let idle = self
            .memory
            .idle_fresh
            .rss_mib()
            .max(self.memory.idle_seeded.rss_mib());
        add(
            "resident memory idle",
            "< 40 MiB",
            (idle > 0.0).then(|| {
                (
                    format!(
                        "{:.1} MiB (empty db {:.1}, seeded {:.1})",
                        idle,
                        self.memory.idle_fresh.rss_mib(),
                        self.memory.idle_seeded.rss_mib()
                    ),
                    idle < 40.0,
                )
            }),
        );
        let peak = self.memory.peak_under_load_mib;
        add(
            "resident memory peak under load",
            "< 200 MiB",
            (peak > 0.0).then(|| (format!("{peak:.1} MiB (request load)"), peak < 200.0)),
        );
        let catch_up = self
            .memory
            .phases
            .iter()
            .filter(|p| p.phase.starts_with("seed"))
            .map(|p| p.peak_rss_mib)
            .fold(0.0, f64::max);
        add(
            "resident memory peak, projection catch-up",
            "< 200 MiB",
            (catch_up > 0.0).then(|| {
                (
                    format!("{catch_up:.1} MiB (projecting bulk-seeded events)"),
                    catch_up < 200.0,
                )
            }),
        );
        let fresh = self.startup.ready_fresh_ms;
        let warm = self
            .startup
            .ready_warm_ms
            .iter()
            .copied()
            .fold(0.0, f64::max);
        add(
            "start to ready",
            "< 1000 ms",
            (fresh > 0.0).then(|| {
                (
                    if self.startup.ready_warm_ms.is_empty() {
                        format!("{fresh:.0} ms (empty db, migrations included)")
                    } else {
                        format!("{fresh:.0} ms empty db, {warm:.0} ms seeded db (worst restart)")
                    },
                    fresh.max(warm) < 1000.0,
                )
            }),
        );
        add(
            "read-your-writes wait added to command p99",
            "< 5 ms",
            self.read_your_writes.as_ref().map(|r| {
                (
                    format!(
                        "{:+.2} ms (p99 {:.2} on vs {:.2} off; p50 {:+.2}){}",
                        r.added_p99_ms,
                        r.on_p99_ms,
                        r.off_p99_ms,
                        r.added_p50_ms,
                        self.read_your_writes_server_wait
                            .as_ref()
                            .map(|w| format!(
                                "; server-side wait p50 {:.2} ms, p99 {:.2} ms over {} commands, {} timeouts",
                                w.p50_ms, w.p99_ms, w.commands, w.timeouts
                            ))
                            .unwrap_or_default()
                    ),
                    r.added_p99_ms < 5.0,
                )
            }),
        );
        targets
    }

    pub fn print(&self) {
        self.print_scenarios();
        if let Some(fanout) = &self.fanout {
            fanout.print();
        }
        if let Some(rebuild) = &self.rebuild {
            rebuild.print();
        }
    }

    fn print_scenarios(&self) {
        println!();
        println!(
            "flowable-ui-bench  {}  ({} cores, {:.0} GiB; load average {} → {})",
            self.date,
            self.machine.cores,
            self.machine.memory_gib,
            self.machine.load_average_start,
            self.machine.load_average_end
        );
        println!(
            "{} models seeded ({} events) in {:.1} s + projection {:.1} s",
            self.seeding.models,
            self.seeding.events,
            self.seeding.insert_s,
            self.seeding.projection_s
        );
        println!();
        println!(
            "{:<22} {:>5} {:>8} {:>6} {:>9} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}  CPU % srv/pg/tool/other",
            "scenario",
            "conc",
            "ok",
            "err",
            "req/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "srv ms/r",
            "pg ms/r",
            "RSS MiB",
        );
        println!("{}", "-".repeat(134));
        for s in &self.scenarios {
            let t = &s.total;
            println!(
                "{:<22} {:>5} {:>8} {:>6} {:>9.1} {:>8.2} {:>8.2} {:>9.2} {:>8.3} {:>8.3} {:>8.1}  {:.0}/{:.0}/{:.0}/{:.0}",
                s.name,
                s.workers,
                t.ok,
                t.errors,
                t.throughput_per_s,
                t.p50_ms,
                t.p99_ms,
                t.max_ms,
                s.server_cpu_ms_per_request,
                s.postgres_cpu_ms_per_request,
                s.server_peak_rss_mib,
                s.cpu.server_pct,
                s.cpu.postgres_pct,
                s.cpu.bench_tool_pct,
                s.cpu.other_pct
            );
            for (op, o) in &s.by_operation {
                println!(
                    "{:<22} {:>5} {:>8} {:>6} {:>9.1} {:>8.2} {:>8.2} {:>9.2}",
                    format!("  {op}"),
                    "",
                    o.ok,
                    o.errors,
                    o.throughput_per_s,
                    o.p50_ms,
                    o.p99_ms,
                    o.max_ms
                );
            }
            if let Some(p99) = t.scheduled_p99_ms {
                println!("{:<22} p99 from schedule {p99:.2} ms", "");
            }
            if !t.error_kinds.is_empty() {
                println!("{:<22} errors: {:?}", "", t.error_kinds);
            }
        }
        match (&self.pgbench, &self.pgbench_unavailable) {
            (Some(pg), _) => {
                if let Some(l) = &pg.latency {
                    println!(
                        "{:<22} {:>5} {:>8} {:>6} {:>9.1} {:>8.2} {:>8.2} {:>9.2} {:>8} {:>8.3} {:>8}  {}",
                        "pgbench (command work)",
                        self.settings.concurrency,
                        l.ok,
                        l.errors,
                        pg.tps,
                        l.p50_ms,
                        l.p99_ms,
                        l.max_ms,
                        "",
                        self.pgbench_postgres_cpu_ms_per_tx.unwrap_or(f64::NAN),
                        "",
                        self.pgbench_cpu.as_ref().map_or_else(String::new, |c| format!(
                            "-/{:.0}/-/{:.0} (pgbench client in other)",
                            c.postgres_pct, c.other_pct
                        ))
                    );
                } else {
                    println!("pgbench (command work): {:.1} tps", pg.tps);
                }
            }
            (None, Some(reason)) => println!("pgbench: unavailable — {reason}"),
            (None, None) => {}
        }
        println!();
        println!(
            "database work per request: {:<22} {:>8} {:>10} {:>10} {:>8} {:>10}   noise: checkpoints, other dbs' commits",
            "", "xacts", "rows read", "rows idx", "written", "buf hits"
        );
        let rows = self
            .scenarios
            .iter()
            .map(|s| (s.name.as_str(), &s.database_per_request))
            .chain(
                self.pgbench_database_per_tx
                    .iter()
                    .map(|d| ("pgbench (per tx)", d)),
            );
        for (name, d) in rows {
            println!(
                "{:<49} {:>8.2} {:>10.1} {:>10.1} {:>8.2} {:>10.1}   {}, {}",
                format!("  {name}"),
                d.transactions,
                d.rows_returned,
                d.rows_fetched,
                d.rows_written,
                d.buffer_hits,
                d.checkpoints_during,
                d.other_databases_commits
            );
        }
        println!();
        if !self.ratio_service_to_pgbench.is_empty() {
            let rounds = self.ratio_rounds.len();
            let ratios: Vec<String> = self
                .ratio_service_to_pgbench
                .iter()
                .map(|(k, v)| {
                    let each: Vec<String> = self
                        .ratio_rounds
                        .iter()
                        .filter_map(|r| r.ratios.get(k).map(|r| format!("{r:.2}")))
                        .collect();
                    if each.len() > 1 {
                        format!("{k} {v:.2} ({})", each.join(", "))
                    } else {
                        format!("{k} {v:.2}")
                    }
                })
                .collect();
            if rounds > 1 {
                let tps: Vec<String> = self
                    .ratio_rounds
                    .iter()
                    .map(|r| format!("{:.0}", r.pgbench_tps))
                    .collect();
                println!(
                    "service/pgbench ratio, median of {rounds} alternating rounds (pgbench tps {}): {}",
                    tps.join(", "),
                    ratios.join(", ")
                );
            } else {
                println!("service/pgbench ratio: {}", ratios.join(", "));
            }
        }
        println!(
            "memory: idle {:.1} MiB (empty db), {:.1} MiB (seeded); peak under load {:.1} MiB; phases: {}",
            self.memory.idle_fresh.rss_mib(),
            self.memory.idle_seeded.rss_mib(),
            self.memory.peak_under_load_mib,
            self.memory
                .phases
                .iter()
                .map(|p| format!("{} {:.0}", p.phase, p.peak_rss_mib))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "ready after start: {:.0} ms (empty db){}",
            self.startup.ready_fresh_ms,
            if self.startup.ready_warm_ms.is_empty() {
                String::new()
            } else {
                format!(
                    ", restarts on the seeded db: {}",
                    self.startup
                        .ready_warm_ms
                        .iter()
                        .map(|v| format!("{v:.0} ms"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        println!();
        println!("{:<44} {:<10} {:<8} measured", "target", "goal", "met");
        for t in &self.targets {
            let met = match t.met {
                Some(true) => "MET",
                Some(false) => "MISSED",
                None => "-",
            };
            println!("{:<44} {:<10} {:<8} {}", t.name, t.target, met, t.measured);
        }
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(self)?)?;
        Ok(())
    }
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn memory_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0)
}

/// Whole-machine CPU counters from `/proc/stat`.
pub struct MachineCpu {
    busy: u64,
    total: u64,
}

pub fn machine_cpu() -> MachineCpu {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    // idle and iowait are fields 4 and 5.
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    MachineCpu {
        busy: total - idle,
        total,
    }
}

impl MachineCpu {
    /// Busy share of all cores since `earlier`, in percent.
    pub fn busy_since(&self, earlier: &MachineCpu) -> f64 {
        let total = self.total.saturating_sub(earlier.total).max(1);
        100.0 * self.busy.saturating_sub(earlier.busy) as f64 / total as f64
    }
}

/// CPU time used so far by the server, by all `postgres` processes, by this tool, and by the
/// whole machine — to split a scenario's CPU between them (and see what else ran).
pub struct CpuSnapshot {
    server: std::time::Duration,
    /// All live `postgres` processes plus the postmaster's reaped children (so backends that
    /// exit during the interval, like pgbench's, still count).
    postgres: std::time::Duration,
    bench: std::time::Duration,
    machine: MachineCpu,
    at: std::time::Instant,
}

/// Shares of the machine during an interval, in percent of one core (200 % = 2 cores busy).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuSplit {
    pub server_pct: f64,
    pub postgres_pct: f64,
    pub bench_tool_pct: f64,
    /// Busy share of the whole machine, in percent of all cores.
    pub machine_busy_pct: f64,
    /// Everything else (other processes on the machine), percent of one core.
    pub other_pct: f64,
    pub server_ms: f64,
    pub postgres_ms: f64,
}

pub fn cpu_snapshot(server_pid: u32) -> CpuSnapshot {
    let mut processes = std::collections::HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.filter_map(Result::ok) {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "postgres" {
                if let Some(cpu) = crate::server::proc_cpu(pid) {
                    processes.insert(pid, cpu);
                }
            }
        }
    }
    let postgres = processes
        .values()
        .map(|p| {
            let postmaster = !processes.contains_key(&p.parent);
            p.own
                + if postmaster {
                    p.children
                } else {
                    Default::default()
                }
        })
        .sum();
    CpuSnapshot {
        server: crate::server::cpu_time(server_pid),
        postgres,
        bench: crate::server::cpu_time(std::process::id()),
        machine: machine_cpu(),
        at: std::time::Instant::now(),
    }
}

impl CpuSnapshot {
    pub fn split_since(&self, earlier: &CpuSnapshot) -> CpuSplit {
        let wall = self.at.duration_since(earlier.at).as_secs_f64().max(1e-9);
        let server = self.server.saturating_sub(earlier.server).as_secs_f64();
        let postgres = self.postgres.saturating_sub(earlier.postgres).as_secs_f64();
        let bench = self.bench.saturating_sub(earlier.bench).as_secs_f64();
        let machine_busy_pct = self.machine.busy_since(&earlier.machine);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let pct = |s: f64| 100.0 * s / wall;
        CpuSplit {
            server_pct: pct(server),
            postgres_pct: pct(postgres),
            bench_tool_pct: pct(bench),
            machine_busy_pct,
            other_pct: (machine_busy_pct * cores - pct(server) - pct(postgres) - pct(bench))
                .max(0.0),
            server_ms: server * 1000.0,
            postgres_ms: postgres * 1000.0,
        }
    }
}
