//! Test support for the audit log: realistic command histories appended with plain SQL
//! (ProcessModel events with command metadata, multi-event commands in one transaction,
//! CommandRejection records), and projecting them in batches of a chosen size.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::time::Duration;

use chrono::{DateTime, Duration as Span, SecondsFormat, Utc};
use projections::audit::AuditRow;
use projections::{checkpoint, feed, generation, LiveOutcome, Position, Projector};
use serde_json::{json, Value};
use sqlx::{PgExecutor, PgPool};
use tokio::time::{sleep, Instant};

/// Who runs a command, from where, when.
#[derive(Clone)]
pub struct Caller {
    pub user: &'static str,
    pub tenant: &'static str,
    pub ip: &'static str,
    pub agent: Option<&'static str>,
}

pub const ALICE: Caller = Caller {
    user: "alice",
    tenant: "acme",
    ip: "10.0.0.1",
    agent: Some("Mozilla/5.0"),
};
pub const BOB: Caller = Caller {
    user: "bob",
    tenant: "acme",
    ip: "10.0.0.2",
    agent: None,
};
pub const CAROL: Caller = Caller {
    user: "carol",
    tenant: "globex",
    ip: "192.168.1.9",
    agent: Some("curl/8.5"),
};

pub const M1: &str = "6f1c1d2e-0000-4000-8000-000000000001";
pub const M2: &str = "6f1c1d2e-0000-4000-8000-000000000002";
pub const M3: &str = "6f1c1d2e-0000-4000-8000-000000000003";

/// The time of the `n`th command of a scenario: one minute apart.
pub fn at(n: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default() + Span::minutes(n)
        // Sub-second digits, to check they survive as microseconds.
        + Span::microseconds(123_456)
}

/// The metadata the command service stores with each event of a command.
pub fn metadata(caller: &Caller, command: &str, time: DateTime<Utc>, request: &str) -> Value {
    let mut meta = json!({
        "user_id": caller.user,
        "tenant_id": caller.tenant,
        "client_ip": caller.ip,
        "correlation_id": request,
        "command": command,
        "time": time.to_rfc3339_opts(SecondsFormat::Micros, true),
    });
    if let (Some(agent), Some(map)) = (caller.agent, meta.as_object_mut()) {
        map.insert("user_agent".to_owned(), json!(agent));
    }
    meta
}

/// Appends one event as postgres-es would; its global position.
#[allow(clippy::too_many_arguments)]
pub async fn append_event<'e>(
    executor: impl PgExecutor<'e>,
    aggregate_type: &str,
    aggregate_id: &str,
    sequence: i64,
    event_type: &str,
    event_version: &str,
    payload: Value,
    metadata: &Value,
) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING global_position",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(sequence)
    .bind(event_type)
    .bind(event_version)
    .bind(payload)
    .bind(metadata)
    .fetch_one(executor)
    .await
    .expect("append an event")
}

/// One accepted command on a process model: its events (type, body), from `first_sequence`
/// on, appended in one transaction. Returns their global positions.
pub async fn command(
    pool: &PgPool,
    caller: &Caller,
    name: &str,
    model: &str,
    first_sequence: i64,
    events: &[(&str, Value)],
    time: DateTime<Utc>,
) -> Vec<i64> {
    let meta = metadata(caller, name, time, &format!("req-{name}-{first_sequence}"));
    let mut tx = pool.begin().await.expect("begin");
    let mut positions = Vec::new();
    for (offset, (event_type, body)) in (0i64..).zip(events) {
        let version = if *event_type == "ModelRestored" {
            "2.0"
        } else {
            "1.0"
        };
        positions.push(
            append_event(
                &mut *tx,
                "ProcessModel",
                model,
                first_sequence + offset,
                event_type,
                version,
                json!({ *event_type: body }),
                &meta,
            )
            .await,
        );
    }
    tx.commit().await.expect("commit the command");
    positions
}

/// A refused command's record (its own stream, one event).
pub async fn reject(
    pool: &PgPool,
    caller: &Caller,
    name: &str,
    model: Option<&str>,
    code: &str,
    reason: &str,
    time: DateTime<Utc>,
) -> i64 {
    let meta = metadata(caller, name, time, &format!("req-{name}-rejected"));
    let payload = json!({
        "tenantId": caller.tenant,
        "command": name,
        "resourceType": "ProcessModel",
        "resourceId": model,
        "reasonCode": code,
        "reason": reason,
    });
    append_event(
        pool,
        "CommandRejection",
        &uuid::Uuid::new_v4().to_string(),
        1,
        "CommandRejected",
        "1.0",
        payload,
        &meta,
    )
    .await
}

pub fn created(key: &str, name: &str, tenant: &str) -> Value {
    json!({"tenantId": tenant, "key": key, "name": name, "category": null,
           "description": null, "modelJson": {"childShapes": []}, "version": 1})
}

/// A realistic history across two tenants; returns the global position of its last event.
/// The audit rows it makes, in order (seq: user, action, resource id, result):
///
/// 1 alice CreateModel m1 · 2 alice UpdateModel m1 · 3 alice PublishModel m1 ·
/// 4 bob UpdateModelJson m1 (3 events: DraftVersionOpened, MetadataChanged,
/// ModelJsonReplaced) · 5 bob PublishModel m1 FAILURE · 6 carol CreateModel m2 ·
/// 7 alice ArchiveModel m1 · 8 carol PublishModel m2 FAILURE · 9 alice RestoreModel m1 ·
/// 10 carol UpdateModel m2 · 11 bob ArchiveModel m1 FAILURE (no resource id given)
pub async fn scenario(pool: &PgPool) -> i64 {
    let m1 = created("orderProcess", "Order process", "acme");
    command(
        pool,
        &ALICE,
        "CreateModel",
        M1,
        1,
        &[("ModelCreated", m1)],
        at(1),
    )
    .await;
    let renamed = json!({"name": "Order handling", "category": "sales", "description": null});
    command(
        pool,
        &ALICE,
        "UpdateModel",
        M1,
        2,
        &[("MetadataChanged", renamed.clone())],
        at(2),
    )
    .await;
    let published = json!({"version": 1, "comment": "first cut"});
    command(
        pool,
        &ALICE,
        "PublishModel",
        M1,
        3,
        &[("ModelPublished", published)],
        at(3),
    )
    .await;
    let edit = [
        ("DraftVersionOpened", json!({"version": 2})),
        ("MetadataChanged", renamed),
        (
            "ModelJsonReplaced",
            json!({"modelJson": {"childShapes": [{"id": "start"}]}}),
        ),
    ];
    command(pool, &BOB, "UpdateModelJson", M1, 4, &edit, at(4)).await;
    reject(
        pool,
        &BOB,
        "PublishModel",
        Some(M1),
        "invalid-model",
        "no start event",
        at(5),
    )
    .await;
    let m2 = created("invoice", "Invoice", "globex");
    command(
        pool,
        &CAROL,
        "CreateModel",
        M2,
        1,
        &[("ModelCreated", m2)],
        at(6),
    )
    .await;
    command(
        pool,
        &ALICE,
        "ArchiveModel",
        M1,
        7,
        &[("ModelArchived", json!({"version": 2}))],
        at(7),
    )
    .await;
    reject(
        pool,
        &CAROL,
        "PublishModel",
        Some(M2),
        "stale-revision",
        "If-Match is stale",
        at(8),
    )
    .await;
    let restored = json!({"version": 3, "sourceVersion": 1});
    command(
        pool,
        &ALICE,
        "RestoreModel",
        M1,
        8,
        &[("ModelRestored", restored)],
        at(9),
    )
    .await;
    let changed = json!({"name": "Invoices", "category": null, "description": "v2"});
    command(
        pool,
        &CAROL,
        "UpdateModel",
        M2,
        2,
        &[("MetadataChanged", changed)],
        at(10),
    )
    .await;
    reject(
        pool,
        &BOB,
        "ArchiveModel",
        None,
        "forbidden",
        "missing privilege",
        at(11),
    )
    .await
}

/// Many single-event commands in one statement (distinct models, so one row each), for
/// chains longer than a page; returns the last global position.
pub async fn bulk(pool: &PgPool, commands: i64) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
             payload, metadata) \
         SELECT 'ProcessModel', 'bulk-' || n, 1, 'ModelCreated', '1.0', \
             jsonb_build_object('ModelCreated', jsonb_build_object('key', 'k' || n, 'version', 1)), \
             jsonb_build_object('user_id', 'user' || (n % 7), 'tenant_id', 'acme', \
                 'command', 'CreateModel', 'correlation_id', 'bulk-' || n, \
                 'time', to_char((timestamptz '2026-01-01 00:00:00+00' + n * interval '1 second') \
                     AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')) \
         FROM generate_series(1, $1) AS n \
         RETURNING global_position",
    )
    .bind(commands)
    .fetch_all(pool)
    .await
    .expect("append bulk events")
    .into_iter()
    .max()
    .unwrap_or_default()
}

/// The feed position of the committed event at global position `last`.
async fn committed_position(pool: &PgPool, last: i64) -> Position {
    feed::position_of(pool, last)
        .await
        .expect("position")
        .expect("the last event is committed")
}

/// Runs `projector` the way the runner does (checkpoint row locked, batch read, applied,
/// checkpoint saved, committed), `batch` events per transaction, until it has processed
/// the event at `last` (the feed may hold events back while any transaction in the cluster
/// is open, so this waits, with a deadline).
pub async fn project(pool: &PgPool, projector: &dyn Projector, batch: i64, last: i64) {
    let until = committed_position(pool, last).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut tx = pool.begin().await.expect("begin");
        let from = checkpoint::load_for_update(&mut tx, projector.name())
            .await
            .expect("checkpoint");
        if from >= until {
            tx.rollback().await.expect("rollback");
            return;
        }
        let events = feed::read_batch(&mut *tx, from, batch).await.expect("read");
        let Some(to) = events.last().map(|event| event.position()) else {
            tx.rollback().await.expect("rollback");
            assert!(Instant::now() < deadline, "the feed stalled");
            sleep(Duration::from_millis(20)).await;
            continue;
        };
        projector.apply(&mut tx, &events).await.expect("apply");
        checkpoint::save(&mut tx, projector.name(), to)
            .await
            .expect("save");
        tx.commit().await.expect("commit");
    }
}

/// As [`project`], through the projector's live step without a transaction
/// ([`Projector::apply_live`]), which it must have: given what it reads with each batch
/// (`with_read`, as the runner does), or loading it itself (as after a read ahead).
pub async fn project_live(
    pool: &PgPool,
    projector: &dyn Projector,
    batch: i64,
    last: i64,
    with_read: bool,
) {
    let until = committed_position(pool, last).await;
    let steps = pg_support::projector_step_pool(pool, 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut tx = pool.begin().await.expect("begin");
        let from = checkpoint::load_for_update(&mut tx, projector.name())
            .await
            .expect("checkpoint");
        tx.commit().await.expect("commit");
        if from >= until {
            return;
        }
        let also = projector.read_also().filter(|_| with_read);
        let read = feed::read_next_also(pool, from, batch, i64::MAX, also)
            .await
            .expect("read");
        let events = read.events;
        let Some(to) = events.last().map(|event| event.position()) else {
            assert!(Instant::now() < deadline, "the feed stalled");
            sleep(Duration::from_millis(20)).await;
            continue;
        };
        assert_eq!(read.also.is_some(), with_read);
        let step = checkpoint::Move {
            name: projector.name(),
            from,
            to,
        };
        let outcome = projector
            .apply_live(&steps, step, &events, read.also.as_deref())
            .await
            .expect("the projector has a live step")
            .expect("apply");
        assert_eq!(outcome, LiveOutcome::Applied);
        projector.committed();
    }
}

/// The model counts of `generation` (`process_model_counts`) that are above 0, and the
/// counts of its rows: equal when the counts are right.
pub async fn model_counts(pool: &PgPool, generation: i64) -> (Vec<ModelCount>, Vec<ModelCount>) {
    let kept = sqlx::query_as(
        "SELECT tenant_id, category, status, models FROM process_model_counts
          WHERE generation = $1 AND models > 0 ORDER BY 1, 2, 3",
    )
    .bind(generation)
    .fetch_all(pool)
    .await
    .expect("kept counts");
    let counted = sqlx::query_as(
        "SELECT tenant_id, category, status, count(*) FROM process_models
          WHERE generation = $1 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    .bind(generation)
    .fetch_all(pool)
    .await
    .expect("counted rows");
    (kept, counted)
}

/// Tenant, category, status and how many models.
pub type ModelCount = (String, Option<String>, String, i64);

/// Forgets a projector's checkpoint (before building a generation again).
pub async fn reset_checkpoint(pool: &PgPool, name: &str) {
    sqlx::query("DELETE FROM projection_checkpoints WHERE name = $1")
        .bind(name)
        .execute(pool)
        .await
        .expect("delete the checkpoint");
}

/// Creates generation `generation`'s table of the audit log, empty and detached, as a
/// rebuild does before it projects into it.
pub async fn new_generation(pool: &PgPool, generation: i64) {
    let mut conn = pool.acquire().await.expect("connection");
    generation::create_partition(&mut conn, "audit_logs", generation, None)
        .await
        .expect("create the generation's table");
}

/// A generation's rows in seq order, attached or not; none if it has no table.
pub async fn rows(pool: &PgPool, generation: i64) -> Vec<AuditRow> {
    let table = generation::partition("audit_logs", generation);
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&table)
        .fetch_one(pool)
        .await
        .expect("look the table up");
    if !exists {
        return Vec::new();
    }
    sqlx::query_as::<_, RowParts>(&format!(
        "SELECT id, user_id, action, resource, resource_id, ip_address, user_agent, \
                \"timestamp\", result, details, tenant_id, correlation_id, global_position, \
                tx_id, seq, prev_hash, hash \
         FROM {table} WHERE generation = $1 ORDER BY seq"
    ))
    .bind(generation)
    .fetch_all(pool)
    .await
    .expect("read the audit rows")
    .into_iter()
    .map(RowParts::into_row)
    .collect()
}

/// The stored columns of a row.
#[derive(sqlx::FromRow)]
struct RowParts {
    id: i64,
    user_id: Option<String>,
    action: String,
    resource: String,
    resource_id: Option<String>,
    ip_address: Option<String>,
    user_agent: Option<String>,
    timestamp: DateTime<Utc>,
    result: String,
    details: Value,
    tenant_id: Option<String>,
    correlation_id: Option<String>,
    global_position: i64,
    tx_id: i64,
    seq: i64,
    prev_hash: String,
    hash: String,
}

impl RowParts {
    fn into_row(self) -> AuditRow {
        AuditRow {
            id: self.id,
            user_id: self.user_id,
            action: self.action,
            resource: self.resource,
            resource_id: self.resource_id,
            ip_address: self.ip_address,
            user_agent: self.user_agent,
            timestamp: self.timestamp,
            result: projections::audit::AuditResult::parse(&self.result)
                .expect("SUCCESS or FAILURE"),
            details: self.details,
            tenant_id: self.tenant_id,
            correlation_id: self.correlation_id,
            global_position: self.global_position,
            tx_id: self.tx_id,
            seq: self.seq,
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}
