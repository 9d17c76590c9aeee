//! Test support for the SQLite read side (included by the `sqlite_*` tests with
//! `#[path]`): a migrated WAL-mode SQLite file per test, removed at the end; appending
//! realistic events with plain SQL (the shapes of `common/audit_fixtures.rs`); running the
//! projector loop in the background.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Duration as Span, SecondsFormat, Utc};
use projections::sqlite::{SqliteConfig, SqliteProjections};
use serde_json::{json, Value};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{SqliteExecutor, SqlitePool};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

static MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");

/// A migrated SQLite file of its own; the file and its WAL are removed on drop.
pub struct TestFile {
    pub pool: SqlitePool,
    path: PathBuf,
}

impl TestFile {
    pub async fn create() -> Self {
        let path = std::env::temp_dir().join(format!(
            "flowable-sqlite-test-{}.db",
            uuid::Uuid::new_v4().simple()
        ));
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .expect("open the test SQLite file");
        let file = Self { pool, path };
        MIGRATOR.run(&file.pool).await.expect("run the migrations");
        file
    }

    pub async fn projections(&self, batch_size: i64) -> SqliteProjections {
        let config = SqliteConfig {
            batch_size,
            poll_interval: Duration::from_millis(50),
            max_backoff: Duration::from_millis(100),
            ..SqliteConfig::default()
        };
        SqliteProjections::new(self.pool.clone(), config)
            .await
            .expect("start the read side")
    }
}

impl Drop for TestFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut name = self.path.clone().into_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(name);
        }
    }
}

/// The projector loop in the background until [`Running::stop`].
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

pub fn start(projections: &SqliteProjections) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let projections = projections.clone();
    let task = tokio::spawn(async move {
        projections
            .run(async {
                let _ = stopped.await;
            })
            .await;
    });
    Running {
        stop: Some(stop),
        task,
    }
}

impl Running {
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("the loop ends cleanly");
    }
}

/// Who runs a command, from where.
#[derive(Clone, Copy)]
pub struct Caller {
    pub user: &'static str,
    pub tenant: &'static str,
    pub ip: &'static str,
}

pub const ALICE: Caller = Caller {
    user: "alice",
    tenant: "acme",
    ip: "10.0.0.1",
};
pub const BOB: Caller = Caller {
    user: "bob",
    tenant: "acme",
    ip: "10.0.0.2",
};
pub const CAROL: Caller = Caller {
    user: "carol",
    tenant: "globex",
    ip: "192.168.1.9",
};

pub const M1: &str = "6f1c1d2e-0000-4000-8000-000000000001";
pub const M2: &str = "6f1c1d2e-0000-4000-8000-000000000002";

/// The time of the `n`th command: one minute apart, with sub-second digits.
pub fn at(n: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default()
        + Span::minutes(n)
        + Span::microseconds(123_456)
}

/// The metadata the command service stores with each event of a command.
pub fn metadata(caller: &Caller, command: &str, time: DateTime<Utc>, request: &str) -> Value {
    json!({
        "user_id": caller.user,
        "tenant_id": caller.tenant,
        "client_ip": caller.ip,
        "user_agent": "Mozilla/5.0",
        "correlation_id": request,
        "command": command,
        "time": time.to_rfc3339_opts(SecondsFormat::Micros, true),
    })
}

/// Appends one event as the SQLite write side does: the first of a commit (`commit` =
/// `None`) takes its own position as the commit id, the others pass that id. Its global
/// position and commit id.
#[allow(clippy::too_many_arguments)]
pub async fn append_event<'e>(
    executor: impl SqliteExecutor<'e>,
    commit: Option<i64>,
    aggregate_type: &str,
    aggregate_id: &str,
    sequence: i64,
    event_type: &str,
    event_version: &str,
    payload: &Value,
    metadata: &Value,
) -> (i64, i64) {
    sqlx::query_as(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata, tx_id) VALUES (?, ?, ?, ?, ?, ?, ?, coalesce(?, \
         (SELECT coalesce(max(seq), 0) + 1 FROM sqlite_sequence WHERE name = 'events'))) \
         RETURNING global_position, tx_id",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(sequence)
    .bind(event_type)
    .bind(event_version)
    .bind(payload)
    .bind(metadata)
    .bind(commit)
    .fetch_one(executor)
    .await
    .expect("append an event")
}

/// One accepted command on a model: its events appended in one transaction; their global
/// positions.
pub async fn command(
    pool: &SqlitePool,
    caller: &Caller,
    name: &str,
    model: &str,
    first_sequence: i64,
    events: &[(&str, Value)],
    time: DateTime<Utc>,
) -> Vec<i64> {
    let meta = metadata(
        caller,
        name,
        time,
        &format!("req-{name}-{model}-{first_sequence}"),
    );
    let mut tx = pool.begin().await.expect("begin");
    let mut positions = Vec::new();
    let mut commit = None;
    for (offset, (event_type, body)) in (0i64..).zip(events) {
        let version = if *event_type == "ModelRestored" {
            "2.0"
        } else {
            "1.0"
        };
        let payload = json!({ *event_type: body });
        let (position, tx_id) = append_event(
            &mut *tx,
            commit,
            "ProcessModel",
            model,
            first_sequence + offset,
            event_type,
            version,
            &payload,
            &meta,
        )
        .await;
        commit = Some(tx_id);
        positions.push(position);
    }
    tx.commit().await.expect("commit the command");
    positions
}

/// A refused command's record (its own stream, one event); its global position.
pub async fn reject(
    pool: &SqlitePool,
    caller: &Caller,
    name: &str,
    model: Option<&str>,
    code: &str,
    time: DateTime<Utc>,
) -> i64 {
    let meta = metadata(caller, name, time, &format!("req-{name}-rejected"));
    let payload = json!({
        "tenantId": caller.tenant, "command": name, "resourceType": "ProcessModel",
        "resourceId": model, "reasonCode": code, "reason": "refused",
    });
    let id = uuid::Uuid::new_v4().to_string();
    append_event(
        pool,
        None,
        "CommandRejection",
        &id,
        1,
        "CommandRejected",
        "1.0",
        &payload,
        &meta,
    )
    .await
    .0
}

pub fn created(key: &str, name: &str, tenant: &str, category: Option<&str>) -> Value {
    json!({"tenantId": tenant, "key": key, "name": name, "category": category,
           "description": null, "modelJson": {"childShapes": []}, "version": 1})
}

/// The audit fixtures' history across two tenants (11 audit rows: 8 commands, one of them
/// three events, and 3 rejections); the global position of its last event.
pub async fn scenario(pool: &SqlitePool) -> i64 {
    let m1 = created("orderProcess", "Order process", "acme", None);
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
    let rename = [("MetadataChanged", renamed.clone())];
    command(pool, &ALICE, "UpdateModel", M1, 2, &rename, at(2)).await;
    let publish = [(
        "ModelPublished",
        json!({"version": 1, "comment": "first cut"}),
    )];
    command(pool, &ALICE, "PublishModel", M1, 3, &publish, at(3)).await;
    let edit = [
        ("DraftVersionOpened", json!({"version": 2})),
        ("MetadataChanged", renamed),
        (
            "ModelJsonReplaced",
            json!({"modelJson": {"childShapes": [{"id": "start"}]}}),
        ),
    ];
    command(pool, &BOB, "UpdateModelJson", M1, 4, &edit, at(4)).await;
    reject(pool, &BOB, "PublishModel", Some(M1), "invalid-model", at(5)).await;
    let m2 = created("invoice", "Invoice", "globex", None);
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
    let archive = [("ModelArchived", json!({"version": 2}))];
    command(pool, &ALICE, "ArchiveModel", M1, 7, &archive, at(7)).await;
    reject(
        pool,
        &CAROL,
        "PublishModel",
        Some(M2),
        "stale-revision",
        at(8),
    )
    .await;
    let restore = [("ModelRestored", json!({"version": 3, "sourceVersion": 1}))];
    command(pool, &ALICE, "RestoreModel", M1, 8, &restore, at(9)).await;
    let changed = json!({"name": "Invoices", "category": null, "description": "v2"});
    let change = [("MetadataChanged", changed)];
    command(pool, &CAROL, "UpdateModel", M2, 2, &change, at(10)).await;
    reject(pool, &BOB, "ArchiveModel", None, "forbidden", at(11)).await
}

/// Every audit row in seq order.
pub async fn audit_rows(pool: &SqlitePool) -> Vec<projections::audit::AuditRow> {
    let page = projections::audit::Page {
        start: 0,
        size: 1_000,
    };
    let filter = projections::audit::AuditFilter::default();
    let mut rows = Vec::new();
    for tenant in ["acme", "globex"] {
        let (mut some, _) = projections::sqlite::audit::list(pool, tenant, &filter, &page)
            .await
            .expect("list the audit log");
        rows.append(&mut some);
    }
    // Rows without a tenant are not listed by any tenant: read them directly.
    let none: Vec<i64> = sqlx::query_scalar("SELECT seq FROM audit_logs WHERE tenant_id IS NULL")
        .fetch_all(pool)
        .await
        .expect("rows without a tenant");
    assert!(none.is_empty(), "the fixtures give every row a tenant");
    rows.sort_by_key(|row| row.seq);
    rows
}

/// Every model of both tenants (with the editor JSON), by id.
pub async fn all_models(pool: &SqlitePool) -> Vec<projections::models::ModelRow> {
    let ids: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT id, tenant_id FROM process_models ORDER BY id")
            .fetch_all(pool)
            .await
            .expect("model ids");
    let mut rows = Vec::new();
    for (id, tenant) in ids {
        rows.push(
            projections::sqlite::models::get(pool, &tenant, id)
                .await
                .expect("get")
                .expect("the model exists"),
        );
    }
    rows
}
