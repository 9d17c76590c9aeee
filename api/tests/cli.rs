//! The command line against a real database: migrate, rebuild with progress, status, and
//! audit verify catching a tampered row.

use std::process::{Command, Output};

use serde_json::json;
use sqlx::Connection;

const BIN: &str = env!("CARGO_BIN_EXE_flowable-ui");

fn server() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

struct Database {
    name: String,
}

impl Drop for Database {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime
                .block_on(async {
                    let mut admin =
                        sqlx::PgConnection::connect(&format!("{}/postgres", server())).await?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut admin)
                        .await?;
                    admin.close().await
                })
                .map_err(std::io::Error::other)
        })
        .join();
    }
}

fn run(db: &Database, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("APP_PROFILE", "test")
        .env("DATABASE_URL", format!("{}/{}", server(), db.name))
        .env("JWT_SECRET", "cli-test-secret-0123456789abcdef0123")
        .output()
        .expect("run flowable-ui")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn migrate_rebuild_status_and_audit_verify() {
    let db = Database {
        name: format!("fui_cli_{}", uuid::Uuid::new_v4().simple()),
    };
    let output = run(&db, &["migrate"]);
    assert!(output.status.success(), "migrate: {}", text(&output));

    let pool = sqlx::PgPool::connect(&format!("{}/{}", server(), db.name))
        .await
        .expect("pool");
    for n in 0..3 {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             VALUES ('ProcessModel', $1, 1, 'ModelCreated', '1.0', $2, $3)",
        )
        .bind(&id)
        .bind(json!({"ModelCreated": {"tenantId": "acme", "key": format!("k{n}"), "name": "N", "category": null,
                     "description": null, "modelJson": {"stencil": {"id": "BPMNDiagram"}, "childShapes": []}, "version": 1}}))
        .bind(json!({"user_id": "u", "tenant_id": "acme", "correlation_id": format!("c{n}"), "command": "CreateModel",
                     "time": "2026-01-01T00:00:00.000000Z"}))
        .execute(&pool)
        .await
        .expect("insert");
    }

    let output = run(&db, &["projections", "rebuild", "--all"]);
    assert!(output.status.success(), "rebuild: {}", text(&output));
    assert!(
        text(&output).contains("process_models: 3 events"),
        "{}",
        text(&output)
    );
    let models: i64 = sqlx::query_scalar("SELECT count(*) FROM process_models")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(models, 3);

    let output = run(&db, &["projections", "status"]);
    assert!(output.status.success(), "status: {}", text(&output));
    assert!(text(&output).contains("audit_logs"), "{}", text(&output));

    let output = run(&db, &["audit", "verify"]);
    assert!(output.status.success(), "verify: {}", text(&output));
    assert!(
        text(&output).contains("3 rows checked"),
        "{}",
        text(&output)
    );

    sqlx::query("UPDATE audit_logs SET user_id = 'mallory' WHERE seq = 2")
        .execute(&pool)
        .await
        .expect("tamper");
    let output = run(&db, &["audit", "verify"]);
    assert!(
        !output.status.success(),
        "a tampered chain must fail: {}",
        text(&output)
    );
    assert!(text(&output).contains("seq 2"), "{}", text(&output));

    let output = run(&db, &["projections", "rebuild", "nothing"]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("no read model named 'nothing'"),
        "{}",
        text(&output)
    );
    pool.close().await;
}
