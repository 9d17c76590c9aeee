//! The write side on the embedded SQLite store: commits, commit ids, optimistic
//! concurrency, and the command service's retries on top of them.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use commands::sqlite::{open, EmbeddedStore, SqliteEventLog, MIGRATOR};
use commands::store::{AppendError, EventLog};
use commands::{CommandError, CommandService};
use common::pg::event;
use common::{create, metadata, rename};
use domain::process_model::CreateModel;
use domain::{
    EditorJson, ModelAction, ModelId, ModelKey, ModelName, ProcessModelCommand, ProcessModelError,
    TenantId,
};
use serde_json::json;

struct Scratch {
    dir: PathBuf,
    store: EmbeddedStore,
}

impl Scratch {
    async fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("fui-commands-{}", uuid::Uuid::new_v4()));
        let store = open(&dir.join("flowable-ui.db"), 8).await.expect("open");
        MIGRATOR.run(store.pool()).await.expect("migrate");
        Self { dir, store }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn commits(scratch: &Scratch) -> Vec<(i64, i64)> {
    sqlx::query_as("SELECT global_position, tx_id FROM events ORDER BY global_position")
        .fetch_all(scratch.store.pool())
        .await
        .expect("rows")
}

#[tokio::test]
async fn a_commits_events_share_the_commit_id_of_its_first_position() {
    let scratch = Scratch::new().await;
    let log = SqliteEventLog::new(scratch.store.pool().clone());
    let first = log
        .append(&[event("a", 1), event("a", 2), event("a", 3)])
        .await
        .expect("first commit");
    let second = log.append(&[event("b", 1)]).await.expect("second commit");
    let third = log
        .append(&[event("a", 4), event("a", 5)])
        .await
        .expect("third commit");
    assert_eq!(
        commits(&scratch).await,
        vec![(1, 1), (2, 1), (3, 1), (4, 4), (5, 5), (6, 5)]
    );
    // The append answers with its last event's place in the feed.
    let places = [first, second, third].map(|p| (p.tx_id, p.global_position));
    assert_eq!(places, [(1, 3), (4, 4), (5, 6)]);
    let (_, loaded) = log
        .load_stream("ProcessModel", "a", "none")
        .await
        .expect("load");
    let sequences: Vec<i64> = loaded.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn a_second_writer_of_a_sequence_conflicts_and_writes_nothing() {
    let scratch = Scratch::new().await;
    let log = SqliteEventLog::new(scratch.store.pool().clone());
    log.append(&[event("a", 1)]).await.expect("first");
    let error = log
        .append(&[event("a", 1), event("a", 2)])
        .await
        .expect_err("sequence 1 is taken");
    assert!(matches!(error, AppendError::Conflict), "{error:?}");
    assert_eq!(
        commits(&scratch).await,
        vec![(1, 1)],
        "the whole commit rolled back"
    );
}

#[tokio::test]
async fn an_append_that_is_not_one_streams_commit_is_refused() {
    let scratch = Scratch::new().await;
    let log = SqliteEventLog::new(scratch.store.pool().clone());
    for events in [
        vec![],
        vec![event("a", 1), event("b", 2)],
        vec![event("a", 1), event("a", 3)],
    ] {
        let error = log.append(&events).await.expect_err("not a commit");
        assert!(matches!(error, AppendError::Store(_)), "{error:?}");
    }
    assert!(commits(&scratch).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_key_yield_one_model() {
    let scratch = Scratch::new().await;
    let service = Arc::new(CommandService::sqlite(scratch.store.pool().clone()));
    let tenant = TenantId::new("acme");
    let key = ModelKey::parse("order").expect("key");
    let id = ModelId::for_key(&tenant, &key);
    let metadata = metadata();
    let attempts = (0..8).map(|_| {
        let service = service.clone();
        let command = ProcessModelCommand {
            tenant_id: tenant.clone(),
            expected_revision: None,
            action: ModelAction::Create(CreateModel {
                key: key.clone(),
                name: ModelName::parse("Order").expect("name"),
                category: None,
                description: None,
                model_json: None,
            }),
        };
        let metadata = metadata.clone();
        tokio::spawn(async move { service.execute(id, command, &metadata).await })
    });
    let mut outcomes: HashMap<&str, usize> = HashMap::new();
    for attempt in futures::future::join_all(attempts).await {
        let outcome = match attempt.expect("task") {
            Ok(_) => "created",
            Err(CommandError::Rejected(ProcessModelError::KeyTaken { .. })) => "key-taken",
            Err(other) => panic!("unexpected outcome: {other:?}"),
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    assert_eq!(outcomes.get("created"), Some(&1), "{outcomes:?}");
    assert_eq!(outcomes.get("key-taken"), Some(&7), "{outcomes:?}");
    let history = service.history(id).await.expect("history");
    assert_eq!(history.len(), 1);
}

/// A fresh store and service with model `key` of tenant `acme` created.
async fn one_model(key: &str) -> (Scratch, CommandService, TenantId, ModelId) {
    let scratch = Scratch::new().await;
    let service = CommandService::sqlite(scratch.store.pool().clone());
    let tenant = TenantId::new("acme");
    let (id, create) = create(&tenant, key, key);
    service
        .execute(id, create, &metadata())
        .await
        .expect("create");
    (scratch, service, tenant, id)
}

async fn snapshot_of(scratch: &Scratch, id: ModelId) -> Option<(i64, String)> {
    sqlx::query_as("SELECT sequence, schema FROM aggregate_snapshots WHERE aggregate_id = ?")
        .bind(id.to_string())
        .fetch_optional(scratch.store.pool())
        .await
        .expect("snapshot row")
}

#[tokio::test]
async fn a_stream_of_large_saves_is_snapshotted_by_its_bytes_before_a_hundred_events() {
    let (scratch, service, tenant, id) = one_model("saves").await;
    // Each save carries ≈ 40 KB of editor JSON: the events pass `EVERY_BYTES` after the
    // seventh save (the create's empty canvas is small).
    let save = |n: usize| ProcessModelCommand {
        tenant_id: tenant.clone(),
        expected_revision: None,
        action: ModelAction::ReplaceModelJson(
            EditorJson::parse(json!({
                "resourceId": "canvas",
                "stencil": {"id": "BPMNDiagram"},
                "properties": {"documentation": format!("save {n} {}", "x".repeat(40_000))},
                "childShapes": []
            }))
            .expect("editor JSON"),
        ),
    };
    for n in 1..=6 {
        service
            .execute(id, save(n), &metadata())
            .await
            .expect("save");
    }
    assert_eq!(
        snapshot_of(&scratch, id).await,
        None,
        "240 KB of saves so far"
    );
    service
        .execute(id, save(7), &metadata())
        .await
        .expect("save");
    assert_eq!(
        snapshot_of(&scratch, id).await,
        Some((8, commands::snapshot::SCHEMA.to_owned())),
        "written when the saves passed {} bytes",
        commands::snapshot::EVERY_BYTES
    );
    // The count starts again after a snapshot, also for a server that loads the model.
    let service = CommandService::sqlite(scratch.store.pool().clone());
    for n in 8..=13 {
        service
            .execute(id, save(n), &metadata())
            .await
            .expect("save");
    }
    assert_eq!(snapshot_of(&scratch, id).await.map(|s| s.0), Some(8));
    service
        .execute(id, save(14), &metadata())
        .await
        .expect("save");
    assert_eq!(snapshot_of(&scratch, id).await.map(|s| s.0), Some(15));
    let through_snapshot = service.load(id).await.expect("load");
    sqlx::query("DELETE FROM aggregate_snapshots")
        .execute(scratch.store.pool())
        .await
        .expect("drop snapshots");
    assert_eq!(service.load(id).await.expect("replay"), through_snapshot);
}

#[tokio::test]
async fn long_streams_load_from_a_snapshot_to_the_same_state_as_a_replay() {
    let (scratch, service, tenant, id) = one_model("long").await;
    for n in 1..=249 {
        let committed = service
            .execute(id, rename(&tenant, &format!("Name {n}"), None), &metadata())
            .await
            .expect("rename");
        // The committed model is the state after the command.
        assert_eq!(committed.model.revision(), n as u64 + 1);
    }
    assert_eq!(
        snapshot_of(&scratch, id).await,
        Some((200, commands::snapshot::SCHEMA.to_owned())),
        "written at 100 and 200 events"
    );
    let through_snapshot = service.load(id).await.expect("load");

    // The same state by replaying every event: without the snapshot.
    sqlx::query("DELETE FROM aggregate_snapshots")
        .execute(scratch.store.pool())
        .await
        .expect("drop snapshots");
    let replayed = service.load(id).await.expect("replay");
    assert_eq!(through_snapshot, replayed);
    assert_eq!(replayed.revision(), 250);

    // A snapshot of another schema, or one that no longer decodes, is ignored and replaced
    // by a server that loads the model from the store (a restarted one: the running one
    // answers from the state it keeps of the models it wrote).
    let service = CommandService::sqlite(scratch.store.pool().clone());
    sqlx::query(
        "INSERT INTO aggregate_snapshots (aggregate_type, aggregate_id, sequence, schema, payload)
         VALUES ('ProcessModel', ?, 240, 'ProcessModel/0', '{\"garbage\": true}')",
    )
    .bind(id.to_string())
    .execute(scratch.store.pool())
    .await
    .expect("stale snapshot");
    assert_eq!(service.load(id).await.expect("load"), replayed);
    service
        .execute(id, rename(&tenant, "Name 250", None), &metadata())
        .await
        .expect("rename");
    assert_eq!(
        snapshot_of(&scratch, id).await,
        Some((251, commands::snapshot::SCHEMA.to_owned()))
    );
    sqlx::query("UPDATE aggregate_snapshots SET payload = '{\"revision\": \"x\"}'")
        .execute(scratch.store.pool())
        .await
        .expect("corrupt snapshot");
    assert_eq!(service.load(id).await.expect("load").revision(), 251);
}
