//! A real backup and restore with the deployment scripts: the restored event store
//! rebuilds read tables identical to the original ones.

use std::path::Path;
use std::process::Command;

use contract_tests::{Options, TestApp, ADMIN, MODELER};
use reqwest::Method;
use serde_json::{json, Value};

const MODELS: &str = "/api/v1/process-models";

async fn read_tables(app: &TestApp) -> Vec<Value> {
    sqlx::query_scalar(
        "SELECT to_jsonb(m) - 'generation' FROM process_models m
          WHERE generation = (SELECT active FROM projection_generations WHERE name = 'process_models')
         UNION ALL
         SELECT to_jsonb(v) - 'generation' FROM model_versions v
          WHERE generation = (SELECT active FROM projection_generations WHERE name = 'process_models')
         ORDER BY 1",
    )
    .fetch_all(app.pool())
    .await
    .expect("read tables")
}

fn script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/scripts")
        .join(name)
}

#[tokio::test]
async fn a_restored_backup_rebuilds_identical_read_tables() {
    for tool in ["pg_dump", "pg_restore", "psql"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .status()
            .expect("sh")
            .success();
        assert!(
            found,
            "{tool} is required for the backup test (Debian: postgresql-client)"
        );
    }
    let app = TestApp::spawn().await;
    let token = app.token("ops", "acme", &[MODELER, ADMIN]);
    for n in 0..5 {
        let created: Value = app
            .request(Method::POST, MODELS, &token)
            .json(&json!({"key": format!("k{n}"), "name": format!("Model {n}"), "category": "backup"}))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("json");
        let id = created["id"].as_str().expect("id").to_owned();
        app.request(Method::PATCH, &format!("{MODELS}/{id}"), &token)
            .json(&json!({"description": format!("edited {n}")}))
            .send()
            .await
            .expect("patch");
    }
    let original = read_tables(&app).await;
    assert_eq!(original.len(), 5);

    let dir = std::env::temp_dir().join(format!("fui-backup-{}", uuid::Uuid::new_v4().simple()));
    let output = Command::new("bash")
        .arg(script("backup-database.sh"))
        .args([
            "--dir",
            &dir.display().to_string(),
            "--url",
            &app.database_url(),
            "--min-bytes",
            "512",
        ])
        .output()
        .expect("run backup");
    assert!(
        output.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let archive = String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    assert!(
        Path::new(&archive).is_file(),
        "backup printed its archive path, got {archive:?}"
    );

    let restored_db = format!("{}_restored", app.database());
    let output = Command::new("bash")
        .arg(script("restore-database.sh"))
        .args(["--target-db", &restored_db, &archive])
        .env("PGHOST", "127.0.0.1")
        .env("PGUSER", "postgres")
        .output()
        .expect("run restore");
    assert!(
        output.status.success(),
        "restore failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // A second app on the restored database, rebuilding its read tables from the events.
    let restored = TestApp::spawn_on(restored_db, Options::default()).await;
    restored.rebuild_to(&token, "process_models", 2).await;
    assert_eq!(read_tables(&restored).await, original);
    std::fs::remove_dir_all(&dir).ok();
}
