//! The bench database: creation and removal, and fast seeding by bulk-inserting events that
//! are copies of events the real server wrote (so the payload format is exactly the
//! service's), after which the service's own projector builds the read tables.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;
use sqlx::{Connection, PgConnection, PgPool};

/// The aggregate type of process models in the event store.
pub const MODEL_TYPE: &str = "ProcessModel";
/// The live checkpoint of the process-model projection.
pub const MODELS_PROJECTION: &str = "process_models";

pub async fn create_database(
    server_url: &str,
    name: &str,
    settings: &[String],
) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(&format!("{server_url}/postgres"))
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {server_url}"))?;
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await?;
    for setting in settings {
        let (key, value) = setting
            .split_once('=')
            .with_context(|| format!("--database-setting {setting}: expected NAME=VALUE"))?;
        if !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            bail!("--database-setting: bad name '{key}'");
        }
        sqlx::query(&format!(
            "ALTER DATABASE \"{name}\" SET {key} = '{}'",
            value.replace('\'', "''")
        ))
        .execute(&mut admin)
        .await?;
    }
    admin.close().await?;
    Ok(())
}

pub async fn drop_database(server_url: &str, name: &str) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(&format!("{server_url}/postgres")).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(())
}

/// One stored event of a template aggregate.
#[derive(Debug, Clone)]
pub struct TemplateEvent {
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
}

/// The events of one aggregate, as the server stored them.
pub async fn template_events(pool: &PgPool, id: &str) -> anyhow::Result<Vec<TemplateEvent>> {
    let rows: Vec<(String, String, Value, Value)> = sqlx::query_as(
        "SELECT event_type, event_version, payload, metadata FROM events \
         WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence",
    )
    .bind(MODEL_TYPE)
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(event_type, event_version, payload, metadata)| TemplateEvent {
                event_type,
                event_version,
                payload,
                metadata,
            },
        )
        .collect())
}

/// The object holding an event's fields: the payload itself, or, for an externally tagged
/// enum (`{"ModelCreated": {...}}`), its single member.
pub fn fields_mut(payload: &mut Value) -> Option<&mut serde_json::Map<String, Value>> {
    let tagged = payload
        .as_object()
        .is_some_and(|o| o.len() == 1 && o.values().all(Value::is_object));
    if tagged {
        payload
            .as_object_mut()
            .and_then(|o| o.values_mut().next())
            .and_then(Value::as_object_mut)
    } else {
        payload.as_object_mut()
    }
}

/// A copy of `template` with some fields replaced.
pub fn with_fields(template: &Value, fields: &[(&str, Value)]) -> anyhow::Result<String> {
    let mut payload = template.clone();
    let object = fields_mut(&mut payload).context("unexpected event payload shape")?;
    for (name, value) in fields {
        if !object.contains_key(*name) {
            bail!("event payload has no field '{name}': {template}");
        }
        object.insert((*name).to_owned(), value.clone());
    }
    Ok(payload.to_string())
}

/// Bulk-inserts events with `UNNEST`, flushing every few thousand rows (or megabytes).
pub struct EventWriter<'a> {
    pool: &'a PgPool,
    aggregate_types: Vec<&'static str>,
    ids: Vec<String>,
    sequences: Vec<i64>,
    types: Vec<String>,
    versions: Vec<String>,
    payloads: Vec<String>,
    metadata: Vec<String>,
    bytes: usize,
    pub written: u64,
}

impl<'a> EventWriter<'a> {
    const MAX_ROWS: usize = 5000;
    const MAX_BYTES: usize = 8 << 20;

    pub fn new(pool: &'a PgPool) -> Self {
        Self {
            pool,
            aggregate_types: Vec::new(),
            ids: Vec::new(),
            sequences: Vec::new(),
            types: Vec::new(),
            versions: Vec::new(),
            payloads: Vec::new(),
            metadata: Vec::new(),
            bytes: 0,
            written: 0,
        }
    }

    pub async fn push(
        &mut self,
        id: String,
        sequence: i64,
        template: &TemplateEvent,
        payload: String,
    ) -> anyhow::Result<()> {
        let metadata = template.metadata.to_string();
        self.push_event(MODEL_TYPE, id, sequence, template, payload, metadata)
            .await
    }

    /// One event of any aggregate type, with its own metadata (JSON text).
    pub async fn push_event(
        &mut self,
        aggregate_type: &'static str,
        id: String,
        sequence: i64,
        template: &TemplateEvent,
        payload: String,
        metadata: String,
    ) -> anyhow::Result<()> {
        self.bytes += payload.len() + metadata.len() + 100;
        self.aggregate_types.push(aggregate_type);
        self.ids.push(id);
        self.sequences.push(sequence);
        self.types.push(template.event_type.clone());
        self.versions.push(template.event_version.clone());
        self.payloads.push(payload);
        self.metadata.push(metadata);
        if self.ids.len() >= Self::MAX_ROWS || self.bytes >= Self::MAX_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    pub async fn flush(&mut self) -> anyhow::Result<()> {
        if self.ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             SELECT u.agg, u.id, u.seq, u.typ, u.ver, u.payload::json, u.meta::jsonb \
             FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::text[]) \
                  AS u(agg, id, seq, typ, ver, payload, meta)",
        )
        .bind(&self.aggregate_types)
        .bind(&self.ids)
        .bind(&self.sequences)
        .bind(&self.types)
        .bind(&self.versions)
        .bind(&self.payloads)
        .bind(&self.metadata)
        .execute(self.pool)
        .await
        .context("bulk insert of seed events")?;
        self.written += self.ids.len() as u64;
        self.aggregate_types.clear();
        self.ids.clear();
        self.sequences.clear();
        self.types.clear();
        self.versions.clear();
        self.payloads.clear();
        self.metadata.clear();
        self.bytes = 0;
        Ok(())
    }
}

/// Waits until the model projection's checkpoint has reached the last event in feed order.
pub async fn wait_for_projection(pool: &PgPool, timeout: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut last_report = Instant::now();
    loop {
        let caught_up: Option<bool> = sqlx::query_scalar(
            "SELECT (c.tx_id, c.global_position) >= (e.tx_id, e.global_position) \
             FROM projection_checkpoints c, \
                  (SELECT tx_id, global_position FROM events \
                   ORDER BY tx_id DESC, global_position DESC LIMIT 1) e \
             WHERE c.name = $1",
        )
        .bind(MODELS_PROJECTION)
        .fetch_optional(pool)
        .await?;
        if caught_up == Some(true) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            bail!("the model projection did not catch up within {timeout:?}");
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM process_models")
                .fetch_one(pool)
                .await
                .unwrap_or(0);
            eprintln!(
                "  … projection catching up: {rows} model rows after {:.0} s",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Counters of the bench database from `pg_stat_database` (cumulative; PostgreSQL flushes a
/// backend's counters at most once a second, so short intervals are approximate).
#[derive(Debug, Clone, Copy, Default)]
pub struct DbCounters {
    pub commits: i64,
    pub rollbacks: i64,
    pub rows_returned: i64,
    pub rows_fetched: i64,
    pub rows_written: i64,
    pub blocks_hit: i64,
    pub blocks_read: i64,
    /// Checkpoints of the whole server (timed and requested).
    pub checkpoints: i64,
    /// Commits in all other databases of the server (other users of the machine).
    pub other_commits: i64,
}

/// Database work per request during an interval.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DbPerRequest {
    pub transactions: f64,
    pub rollbacks: f64,
    /// Rows read by scans (sequential and index), per request.
    pub rows_returned: f64,
    /// Rows fetched through indexes, per request.
    pub rows_fetched: f64,
    /// Rows inserted, updated or deleted, per request.
    pub rows_written: f64,
    pub buffer_hits: f64,
    pub buffer_reads: f64,
    /// Checkpoints during the interval (a forced one, e.g. from another user's
    /// `CREATE`/`DROP DATABASE`, stalls writers: a noise marker).
    pub checkpoints_during: i64,
    /// Transactions committed in other databases during the interval (noise; not per request).
    pub other_databases_commits: i64,
}

pub async fn counters(pool: &PgPool) -> anyhow::Result<DbCounters> {
    let row: (i64, i64, i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT xact_commit, xact_rollback, tup_returned, tup_fetched, \
                tup_inserted + tup_updated + tup_deleted, blks_hit, blks_read \
           FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?;
    let (checkpoints, other_commits): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter),                 (SELECT coalesce(sum(xact_commit), 0)::int8 FROM pg_stat_database                   WHERE datname IS DISTINCT FROM current_database())",
    )
    .fetch_one(pool)
    .await?;
    Ok(DbCounters {
        checkpoints,
        other_commits,
        commits: row.0,
        rollbacks: row.1,
        rows_returned: row.2,
        rows_fetched: row.3,
        rows_written: row.4,
        blocks_hit: row.5,
        blocks_read: row.6,
    })
}

impl DbCounters {
    pub fn per_request_since(&self, earlier: &DbCounters, requests: u64) -> DbPerRequest {
        let n = requests.max(1) as f64;
        let d = |now: i64, then: i64| (now - then) as f64 / n;
        DbPerRequest {
            transactions: d(self.commits, earlier.commits),
            rollbacks: d(self.rollbacks, earlier.rollbacks),
            rows_returned: d(self.rows_returned, earlier.rows_returned),
            rows_fetched: d(self.rows_fetched, earlier.rows_fetched),
            rows_written: d(self.rows_written, earlier.rows_written),
            buffer_hits: d(self.blocks_hit, earlier.blocks_hit),
            buffer_reads: d(self.blocks_read, earlier.blocks_read),
            checkpoints_during: self.checkpoints - earlier.checkpoints,
            other_databases_commits: self.other_commits - earlier.other_commits,
        }
    }
}
