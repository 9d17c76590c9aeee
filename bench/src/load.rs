//! Load generation against the HTTP API: closed-loop workers (each sends its next request when
//! the previous one answered) and open-loop fixed-rate workers (requests on a schedule, latency
//! also measured from the scheduled time so a slow server cannot hide queueing), with
//! HdrHistograms per operation.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

/// Number of categories the seeded models are spread over (`cat-00` … `cat-49`).
pub const CATEGORIES: usize = 50;
/// Page size of the list scenario.
pub const PAGE_SIZE: usize = 20;
/// Deepest page the list scenario asks for (0-based).
pub const MAX_PAGE: usize = 9;

/// What the workers share.
#[derive(Clone)]
pub struct Ctx {
    pub client: reqwest::Client,
    pub base: String,
    pub bearer: String,
    /// Seeded models (one `ModelCreated` each, revision 1).
    pub models: Arc<Vec<Uuid>>,
    /// The highest revision (ETag) seen of each seeded model, for `If-Match`.
    pub revisions: Arc<Vec<AtomicU64>>,
    /// Seeded DRAFT models with a valid editor JSON, each published at most once.
    pub publishable: Arc<Vec<Uuid>>,
    /// Models with a short and with a long history.
    pub short_history: Arc<Vec<Uuid>>,
    pub long_history: Arc<Vec<Uuid>>,
}

impl Ctx {
    /// Seeded models start at revision 1.
    pub fn set_models(&mut self, models: Vec<Uuid>) {
        self.revisions = Arc::new((0..models.len()).map(|_| AtomicU64::new(1)).collect());
        self.models = Arc::new(models);
    }
}

/// One kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Get,
    List,
    /// PATCH with `If-Match` on a model of the worker's own partition (so never stale).
    UpdateIfMatch,
    /// PATCH without `If-Match` on any seeded model.
    Update,
    Publish,
    /// PATCH without `If-Match` on a short- or long-history model of the worker's own.
    UpdateShortHistory,
    UpdateLongHistory,
}

impl Op {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Get => "get",
            Self::List => "list",
            Self::UpdateIfMatch => "update-if-match",
            Self::Update => "update",
            Self::Publish => "publish",
            Self::UpdateShortHistory => "update-short-history",
            Self::UpdateLongHistory => "update-long-history",
        }
    }

    fn expected(&self) -> StatusCode {
        match self {
            Self::Create => StatusCode::CREATED,
            _ => StatusCode::OK,
        }
    }
}

/// Which operations a scenario sends.
#[derive(Debug, Clone, Copy)]
pub enum Mix {
    Only(Op),
    /// 80 % reads (60 % get, 20 % list), 20 % commands (15 % update without `If-Match`,
    /// 5 % create): creates and edits of stored models land in the same projector batches,
    /// as they do in use.
    ReadMostly,
}

impl Mix {
    fn pick(&self, rng: &mut StdRng) -> Op {
        match self {
            Self::Only(op) => *op,
            Self::ReadMostly => match rng.random_range(0..100) {
                0..60 => Op::Get,
                60..80 => Op::List,
                80..95 => Op::Update,
                _ => Op::Create,
            },
        }
    }
}

/// A worker's own state.
struct Worker {
    /// Unique per load run: part of every written value, so that no edit repeats an earlier
    /// run's (an edit to the current value writes nothing and would be unfairly cheap).
    run: u64,
    index: usize,
    workers: usize,
    rng: StdRng,
    next_publish: usize,
    next_history: usize,
    sent: u64,
}

impl Worker {
    fn new(index: usize, workers: usize, seed: u64) -> Self {
        Self {
            run: seed,
            index,
            workers,
            rng: StdRng::seed_from_u64(seed ^ ((index as u64 + 1) * 0x9E37_79B9_7F4A_7C15)),
            next_publish: 0,
            next_history: 0,
            sent: 0,
        }
    }

    /// A random index `i < len` with `i % workers == index` (the worker's partition).
    fn own_index(&mut self, len: usize) -> Option<usize> {
        if self.index >= len {
            return None;
        }
        let slots = (len - self.index).div_ceil(self.workers);
        Some(self.index + self.workers * self.rng.random_range(0..slots))
    }

    /// The next unused element of the worker's partition of `items`, cycling when `cycle`.
    fn own_next(
        index: usize,
        workers: usize,
        next: &mut usize,
        len: usize,
        cycle: bool,
    ) -> Option<usize> {
        let slots = len.saturating_sub(index).div_ceil(workers);
        if slots == 0 || (!cycle && *next >= slots) {
            return None;
        }
        let slot = *next % slots;
        *next += 1;
        Some(index + workers * slot)
    }
}

/// Latency histograms and outcomes of one operation.
pub struct Stats {
    pub latency: Histogram<u64>,
    /// Fixed rate only: latency from the scheduled send time.
    pub corrected: Option<Histogram<u64>>,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
}

fn histogram() -> Histogram<u64> {
    // 1 µs … 120 s at 3 significant digits.
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

impl Stats {
    fn new(corrected: bool) -> Self {
        Self {
            latency: histogram(),
            corrected: corrected.then(histogram),
            ok: 0,
            errors: BTreeMap::new(),
        }
    }

    fn merge(&mut self, other: &Stats) {
        let _ = self.latency.add(&other.latency);
        match (&mut self.corrected, &other.corrected) {
            (Some(mine), Some(theirs)) => {
                let _ = mine.add(theirs);
            }
            (None, Some(theirs)) => self.corrected = Some(theirs.clone()),
            _ => {}
        }
        self.ok += other.ok;
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
    }

    fn requests(&self) -> u64 {
        self.ok + self.errors.values().sum::<u64>()
    }

    pub fn summary(&self, elapsed: Duration) -> Summary {
        let ms = |us: u64| us as f64 / 1000.0;
        let q = |h: &Histogram<u64>, q: f64| ms(h.value_at_quantile(q));
        let secs = elapsed.as_secs_f64().max(1e-9);
        Summary {
            requests: self.requests(),
            ok: self.ok,
            errors: self.requests() - self.ok,
            error_kinds: self.errors.clone(),
            throughput_per_s: self.ok as f64 / secs,
            mean_ms: self.latency.mean() / 1000.0,
            p50_ms: q(&self.latency, 0.50),
            p90_ms: q(&self.latency, 0.90),
            p99_ms: q(&self.latency, 0.99),
            p999_ms: q(&self.latency, 0.999),
            max_ms: ms(self.latency.max()),
            scheduled_p99_ms: self.corrected.as_ref().map(|h| q(h, 0.99)),
            scheduled_max_ms: self.corrected.as_ref().map(|h| ms(h.max())),
        }
    }
}

/// Figures of one operation (or of a whole scenario).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    /// Successful requests per second.
    pub throughput_per_s: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Fixed-rate scenarios: p99 measured from the scheduled send time (includes waiting for
    /// a free worker, i.e. corrected for coordinated omission).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_p99_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_max_ms: Option<f64>,
}

/// What a load run collected.
pub struct Collected {
    pub elapsed: Duration,
    pub by_op: BTreeMap<&'static str, Stats>,
    /// Some workers stopped early because they ran out of work (publishable models).
    pub exhausted_workers: usize,
}

impl Collected {
    pub fn total(&self) -> Stats {
        let corrected = self.by_op.values().any(|s| s.corrected.is_some());
        let mut total = Stats::new(corrected);
        for stats in self.by_op.values() {
            total.merge(stats);
        }
        total
    }
}

/// How a load run is paced.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// `workers` closed-loop workers.
    Closed,
    /// Requests at `rate` per second overall, spread over the workers.
    Fixed { rate: f64 },
}

/// Runs `mix` with `workers` workers for `duration` (and at most `max_requests` requests).
/// `seed` must differ between runs: it picks the models and is part of every written value.
pub async fn run(
    ctx: Arc<Ctx>,
    mix: Mix,
    pace: Pace,
    workers: usize,
    duration: Duration,
    max_requests: u64,
    seed: u64,
) -> Collected {
    let started = Instant::now();
    let deadline = started + duration;
    let per_worker = max_requests.div_ceil(workers as u64).max(1);
    let mut set = tokio::task::JoinSet::new();
    for index in 0..workers {
        let ctx = ctx.clone();
        set.spawn(async move {
            let mut worker = Worker::new(index, workers, seed);
            let mut stats: BTreeMap<&'static str, Stats> = BTreeMap::new();
            let fixed = matches!(pace, Pace::Fixed { .. });
            let mut exhausted = false;
            for n in 0..per_worker {
                let scheduled = match pace {
                    Pace::Closed => Instant::now(),
                    Pace::Fixed { rate } => {
                        let offset = (n * workers as u64 + index as u64) as f64 / rate;
                        let at = started + Duration::from_secs_f64(offset);
                        if at >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(at.into()).await;
                        at
                    }
                };
                if Instant::now() >= deadline {
                    break;
                }
                let op = mix.pick(&mut worker.rng);
                let sent = Instant::now();
                let Some(outcome) = execute(&ctx, op, &mut worker).await else {
                    exhausted = true;
                    break;
                };
                let done = Instant::now();
                let entry = stats.entry(op.label()).or_insert_with(|| Stats::new(fixed));
                let us = |d: Duration| (d.as_micros() as u64).max(1);
                entry.latency.saturating_record(us(done - sent));
                if let Some(corrected) = &mut entry.corrected {
                    corrected.saturating_record(us(done - scheduled));
                }
                match outcome {
                    Ok(()) => entry.ok += 1,
                    Err(kind) => *entry.errors.entry(kind).or_default() += 1,
                }
                worker.sent += 1;
            }
            (stats, exhausted)
        });
    }
    let mut by_op: BTreeMap<&'static str, Stats> = BTreeMap::new();
    let mut exhausted_workers = 0;
    while let Some(joined) = set.join_next().await {
        let Ok((stats, exhausted)) = joined else {
            continue;
        };
        exhausted_workers += usize::from(exhausted);
        for (op, s) in stats {
            match by_op.get_mut(op) {
                Some(mine) => mine.merge(&s),
                None => {
                    by_op.insert(op, s);
                }
            }
        }
    }
    Collected {
        elapsed: started.elapsed(),
        by_op,
        exhausted_workers,
    }
}

/// Sends one request of kind `op`; `None` when the worker has nothing left to do.
async fn execute(ctx: &Ctx, op: Op, worker: &mut Worker) -> Option<Result<(), String>> {
    let base = &ctx.base;
    let models = "/api/v1/process-models";
    let (request, revision_slot) = match op {
        Op::Create => {
            let key = format!("c{}", Uuid::new_v4().simple());
            let category = worker.rng.random_range(0..CATEGORIES);
            let body = json!({
                "key": key,
                "name": format!("Created {key}"),
                "category": format!("cat-{category:02}"),
            });
            (ctx.client.post(format!("{base}{models}")).json(&body), None)
        }
        Op::Get => {
            let index = worker.rng.random_range(0..ctx.models.len());
            let id = ctx.models[index];
            (ctx.client.get(format!("{base}{models}/{id}")), Some(index))
        }
        Op::List => {
            let category = worker.rng.random_range(0..CATEGORIES);
            let start = worker.rng.random_range(0..=MAX_PAGE) * PAGE_SIZE;
            let url = format!(
                "{base}{models}?category=cat-{category:02}&sort=name&order=asc&start={start}&size={PAGE_SIZE}"
            );
            (ctx.client.get(url), None)
        }
        Op::UpdateIfMatch => {
            let index = worker.own_index(ctx.models.len())?;
            let revision = ctx.revisions[index].load(Ordering::Relaxed);
            let id = ctx.models[index];
            let body = json!({ "name": format!("Renamed {:x}.{} by {}", worker.run, worker.sent, worker.index) });
            let request = ctx
                .client
                .patch(format!("{base}{models}/{id}"))
                .header("If-Match", format!("\"{revision}\""))
                .json(&body);
            (request, Some(index))
        }
        Op::Update => {
            let index = worker.rng.random_range(0..ctx.models.len());
            let id = ctx.models[index];
            let body = json!({ "name": format!("Updated {:x}.{} by {}", worker.run, worker.sent, worker.index) });
            (
                ctx.client.patch(format!("{base}{models}/{id}")).json(&body),
                Some(index),
            )
        }
        Op::Publish => {
            let index = Worker::own_next(
                worker.index,
                worker.workers,
                &mut worker.next_publish,
                ctx.publishable.len(),
                false,
            )?;
            let id = ctx.publishable[index];
            let body = json!({ "comment": "bench" });
            (
                ctx.client
                    .post(format!("{base}{models}/{id}/publish"))
                    .json(&body),
                None,
            )
        }
        Op::UpdateShortHistory | Op::UpdateLongHistory => {
            let ids = if op == Op::UpdateShortHistory {
                &ctx.short_history
            } else {
                &ctx.long_history
            };
            let index = Worker::own_next(
                worker.index,
                worker.workers,
                &mut worker.next_history,
                ids.len(),
                true,
            )?;
            let id = ids[index];
            let body = json!({ "description": format!("edit {:x}.{} by {}", worker.run, worker.sent, worker.index) });
            (
                ctx.client.patch(format!("{base}{models}/{id}")).json(&body),
                None,
            )
        }
    };
    let response = request.header("Authorization", &ctx.bearer).send().await;
    let response = match response {
        Ok(response) => response,
        Err(error) => return Some(Err(transport_error(&error))),
    };
    let status = response.status();
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_matches('"').parse::<u64>().ok());
    // Read the whole body, as a client would (and so the connection is reused).
    if let Err(error) = response.bytes().await {
        return Some(Err(transport_error(&error)));
    }
    if let (Some(slot), Some(etag)) = (revision_slot, etag) {
        ctx.revisions[slot].fetch_max(etag, Ordering::Relaxed);
    }
    if status == op.expected() {
        return Some(Ok(()));
    }
    if let (Some(slot), StatusCode::PRECONDITION_FAILED) = (revision_slot, status) {
        // Someone else changed it: learn the current revision (untimed, after the fact).
        refresh_revision(ctx, slot).await;
    }
    Some(Err(format!("HTTP {}", status.as_u16())))
}

async fn refresh_revision(ctx: &Ctx, slot: usize) {
    let url = format!("{}/api/v1/process-models/{}", ctx.base, ctx.models[slot]);
    let response = ctx
        .client
        .request(Method::GET, url)
        .header("Authorization", &ctx.bearer)
        .send()
        .await;
    if let Some(etag) = response.ok().and_then(|r| {
        r.headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim_matches('"').parse::<u64>().ok())
    }) {
        ctx.revisions[slot].fetch_max(etag, Ordering::Relaxed);
    }
}

fn transport_error(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timeout".into()
    } else if error.is_connect() {
        "connect".into()
    } else {
        "transport".into()
    }
}
